"""One plain function per operation, named by its operationId: validated input in, response out."""
