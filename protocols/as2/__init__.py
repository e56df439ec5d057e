"""AS2 protocol: a sans-IO core plus its asyncio endpoint."""
