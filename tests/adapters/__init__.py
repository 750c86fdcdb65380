"""The cloud adapters (skewless.adapters), each against its local-cloud emulator or real server."""
