"""Data: reading images safely, importing datasets (ImageFolder, CSV, ...), splitting, transforms."""
