"""NATS JetStream adapter used by every service that talks to the bus."""
