"""Alibaba adapters: OSS, MaxCompute, Tair, and the local Alibaba cloud end to end."""
