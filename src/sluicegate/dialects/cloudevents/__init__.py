"""The cloudevents dialect (MConnect Events): produce, consumer instances, tools."""
