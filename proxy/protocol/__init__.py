"""Message models for both sides of the proxy, and the one converter."""
