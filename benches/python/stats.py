"""What every comparison script prints: `<metric> <median> <spread>` lines, where the spread is
the interquartile range of the trials as a percentage of their median (the figure the xtask
report states beside each median)."""
import statistics


def emit(key, samples):
    """Prints the median of `samples` and their spread, in the unit the samples are in."""
    median = statistics.median(samples)
    if len(samples) >= 2 and median:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        spread = abs(q3 - q1) / abs(median) * 100
    else:
        spread = 0.0
    print(f"{key} {median:.6g} {spread:.1f}", flush=True)
