"""skewless benchmarks: `./run bench --help`."""
