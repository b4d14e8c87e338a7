"""Sans-I/O protocol cores: bytes in, events out, bytes to send. Never asyncio or socket."""
