"""The matting library: image I/O, compositing, networks, training and inference."""
