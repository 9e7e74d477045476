"""Ground-truth datasets. Every non-underscore module here registers its datasets."""
