"""Models: backbone registry (timm), task heads, the assembled classifier and its checkpoint format."""
