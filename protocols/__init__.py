"""Protocol cores (sans-IO) and their thin asyncio adapters. Never imports `gateway`."""
