"""The local cloud (skewless.localcloud): process management and its emulators."""
