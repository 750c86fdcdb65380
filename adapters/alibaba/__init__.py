"""Alibaba Cloud adapters: OSS offline store and registry (oss2), MaxCompute engine (pyodps), Tair online store."""
