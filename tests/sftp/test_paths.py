"""The pure path policy: hostile paths first, then what an account may see."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sftp.paths import (
    Area,
    Jail,
    Kind,
    PathRefused,
    Refusal,
    check_name,
    completion_name,
    normalise,
    require,
)

JAIL = Jail(
    deposit_codes=frozenset({"FSO1100A", "FSO1106A"}),
    collect_codes=frozenset({"FEN1200A"}),
    archive_dir="archive",
)


def refusal(raw: bytes | str) -> Refusal:
    with pytest.raises(PathRefused) as caught:
        JAIL.resolve(raw)
    return caught.value.refusal


# --- hostile paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "/etc/passwd",
        "/../../etc/passwd",
        "../../../../etc/shadow",
        "/out/FSO1100A/../../../etc/passwd",
        "/root/.ssh/authorized_keys",
        "/proc/self/environ",
        "/dev/zero",
        "/tmp",
    ],
)
def test_paths_outside_the_jail_name_nothing(raw: str) -> None:
    assert refusal(raw) is Refusal.NO_SUCH_FILE


def test_dot_dot_stops_at_the_jail_root_like_a_chroot() -> None:
    assert JAIL.resolve("/../..").kind is Kind.ROOT
    assert JAIL.resolve("../out/../out/FSO1100A/").path == "/out/FSO1100A"
    assert JAIL.resolve("/out/FSO1100A/../../in/FEN1200A/x.xml").path == "/in/FEN1200A/x.xml"


@pytest.mark.parametrize(
    "raw",
    [b"/out/FSO1100A/a\x00b", b"/out/FSO1100A/\xff\xfe.xml", "/out/FSO1100A/a\\b", "/out/x" * 300],
)
def test_nul_invalid_utf8_backslash_and_overlong_paths_are_invalid_names(raw: bytes | str) -> None:
    assert refusal(raw) in {Refusal.INVALID_NAME, Refusal.NO_SUCH_FILE}


@pytest.mark.parametrize(
    "name", ["a\nb.xml", "a\x1bb", "a\x7fb", "a\u202eb.xml", "é\u2028.xml", "x" * 256]
)
def test_control_and_bidi_characters_or_long_names_are_refused(name: str) -> None:
    assert refusal(f"/out/FSO1100A/{name}") is Refusal.INVALID_NAME


@pytest.mark.parametrize("name", ["facture été.xml", "請求書.xml", "a~b_c-d (1).xml"])
def test_printable_names_in_any_script_are_accepted(name: str) -> None:
    location = JAIL.resolve(f"/out/FSO1100A/{name}")
    assert (location.kind, location.name) == (Kind.FILE, name)


def test_unknown_code_directories_and_codes_of_the_other_area_do_not_exist() -> None:
    assert refusal("/out/FSO9999A") is Refusal.NO_SUCH_FILE
    assert refusal("/out/FEN1200A/x.xml") is Refusal.NO_SUCH_FILE  # a collect code
    assert refusal("/in/FSO1100A") is Refusal.NO_SUCH_FILE
    assert refusal("/out/FSO1100A/sub/x.xml") is Refusal.NO_SUCH_FILE


def test_an_account_without_collect_codes_has_no_collect_area() -> None:
    jail = Jail(deposit_codes=frozenset({"XGB0001A"}), collect_codes=frozenset())
    assert jail.children(jail.resolve("/")) == ["out"]
    with pytest.raises(PathRefused):
        jail.resolve("/in")


def test_operation_policy_refuses_writing_outside_deposit_files() -> None:
    for raw in ["/", "/out", "/out/FSO1100A", "/in/FEN1200A/x.xml"]:
        with pytest.raises(PathRefused) as caught:
            require(JAIL.resolve(raw), kind=Kind.FILE, area=Area.DEPOSIT, action="write")
        assert caught.value.refusal is Refusal.PERMISSION_DENIED
    require(JAIL.resolve("/out/FSO1100A/x.xml"), kind=Kind.FILE, area=Area.DEPOSIT, action="write")


# --- what an account sees --------------------------------------------------------------------


def test_resolution_of_every_level() -> None:
    assert JAIL.resolve("/").kind is Kind.ROOT
    assert JAIL.resolve("out").area is Area.DEPOSIT
    code_dir = JAIL.resolve("/out/FSO1100A")
    assert (code_dir.kind, code_dir.code) == (Kind.CODE_DIR, "FSO1100A")
    file = JAIL.resolve("/out/FSO1100A/./facture.xml")
    assert (file.kind, file.name, file.path) == (Kind.FILE, "facture.xml", file.path)
    archived = JAIL.resolve("/in/FEN1200A/archive/old.xml")
    assert archived.archived
    assert archived.kind is Kind.FILE
    assert JAIL.resolve("/in/FEN1200A/archive").kind is Kind.ARCHIVE_DIR
    assert JAIL.resolve("/in/FEN1200A/archive").archived
    with pytest.raises(PathRefused):
        JAIL.resolve("/in/FEN1200A/archive/a/b")
    assert JAIL.resolve("x.xml", cwd="/out/FSO1106A").path == "/out/FSO1106A/x.xml"


def test_children_list_areas_codes_and_archive() -> None:
    assert JAIL.children(JAIL.resolve("/")) == ["in", "out"]
    assert JAIL.children(JAIL.resolve("/out")) == ["FSO1100A", "FSO1106A"]
    assert JAIL.children(JAIL.resolve("/in/FEN1200A")) == ["archive"]
    assert JAIL.children(JAIL.resolve("/out/FSO1100A")) == []


def test_completion_names() -> None:
    assert completion_name("x.xml.part") == "x.xml"
    assert completion_name("x.xml.filepart") == "x.xml"
    assert completion_name(".part") is None
    assert completion_name("x.xml") is None
    assert completion_name("x.tmp", (".tmp",)) == "x"


def test_check_name_refuses_directory_references() -> None:
    for name in ["", ".", "..", "a/b"]:
        with pytest.raises(PathRefused):
            check_name(name)
    assert check_name("FSO1100A_01ABC.xml") == "FSO1100A_01ABC.xml"


# --- properties -------------------------------------------------------------------------------

segments = st.sampled_from(["..", ".", "", "out", "in", "FSO1100A", "FEN1200A", "etc", "x.xml"])


@settings(max_examples=400)
@given(st.lists(segments, max_size=8), st.booleans())
def test_any_path_resolves_inside_the_jail_or_is_refused(parts: list[str], absolute: bool) -> None:
    raw = ("/" if absolute else "") + "/".join(parts)
    try:
        location = JAIL.resolve(raw)
    except PathRefused:
        return  # refused with a typed reason: fine
    assert location.path.startswith("/")
    assert ".." not in location.path.split("/")
    assert JAIL.resolve(location.path) == location  # canonical form is a fixed point


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_policy(raw: bytes) -> None:
    try:
        normalise(raw)
        JAIL.resolve(raw)
    except PathRefused:
        pass
