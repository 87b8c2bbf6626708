"""The multimodal data format: items (Catalog), interactions, data set folders, splits."""
