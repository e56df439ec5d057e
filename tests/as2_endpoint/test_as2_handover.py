"""How the listener hands an unwrapped payload to the inbox: never as one more whole copy."""

from __future__ import annotations

import os

from protocols.as2.inbound import HAND_STEP, handed_over

MIB = HAND_STEP


async def test_bytes_pass_as_they_are() -> None:
    payload = b"decoded from base64"
    assert handed_over(payload) is payload


async def test_a_small_view_is_copied_once() -> None:
    handed = handed_over(memoryview(bytearray(b"<Invoice/>")))
    assert handed == b"<Invoice/>"
    assert isinstance(handed, bytes)


async def test_a_big_view_goes_as_chunks_of_one_mib() -> None:
    data = os.urandom(3 * MIB + 5)
    handed = handed_over(memoryview(bytearray(data)))
    assert not isinstance(handed, bytes)
    chunks = [chunk async for chunk in handed]
    assert [len(chunk) for chunk in chunks] == [MIB, MIB, MIB, 5]
    assert b"".join(chunks) == data
