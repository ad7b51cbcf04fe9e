"""Object detection: one box toolkit, SSD-lite and YOLO-style detectors, packaged face detectors."""
