"""What this machine computes fast. Settings that depend on the hardware (precision, threads, fused optimizer,
torch.compile) are chosen by timing the run's own model at its batch shape (calibrate.py) and cached per machine
(choices.py); `finetext doctor` (doctor.py) prints the machine, its matmul peaks (peaks.py) and the cache."""
