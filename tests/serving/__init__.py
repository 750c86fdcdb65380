"""The model server (skewless.serving): packaging, HTTP contracts, the prediction log, images and deploy targets."""
