"""tinyzo host-side Python tools: the model importer and the .tzm reader/writer.

Everything in this package uses only the Python standard library, so it runs on any python3
(>= 3.8) without numpy or torch.
"""
