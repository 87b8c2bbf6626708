"""Personalized multimodal generation (PMG): from a user's history to an image."""
