"""Context engine: documents, syntax, prompt windows and post-processing.

Pure code: nothing here imports the LSP layer or a model runtime, so it is tested directly.
"""
