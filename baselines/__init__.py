"""DINO and BYOL built from lightly's heads, losses, momentum utilities and transforms."""
