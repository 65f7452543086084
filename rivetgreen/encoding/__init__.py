"""Wire and storage encodings."""
