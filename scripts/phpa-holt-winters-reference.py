#!/usr/bin/env python3
# Reference values for controller/tests/sim_peers.rs: PHPA's holt_winters.py on a clean-season replica history.
import math, warnings
import statsmodels.tsa.api as sm
warnings.simplefilter("ignore")
def season(m):
    # integer replica counts: a daily-like shape
    return [round(6 + 4 * math.sin(2 * math.pi * i / m)) for i in range(m)]
m = 12
base = season(m)
for n_seasons, extra in [(2, 0), (3, 5), (4, 0), (4, 7)]:
    series = [base[i % m] + (i // m) for i in range(n_seasons * m + extra)]  # season + a step per season
    model = sm.ExponentialSmoothing(series, trend="add", seasonal="add", seasonal_periods=m,
                                    initialization_method="estimated")
    fit = model.fit(smoothing_level=0.9, smoothing_trend=0.9, smoothing_seasonal=0.9, optimized=False)
    f = fit.forecast(steps=1)[0]
    print(n_seasons, extra, len(series), repr(float(f)), math.ceil(f), fit.params["initial_level"], fit.params["initial_trend"])
    print("  series", series)
# pure season, no trend
series = base * 4
fit = sm.ExponentialSmoothing(series, trend="add", seasonal="add", seasonal_periods=m, initialization_method="estimated").fit(smoothing_level=0.9, smoothing_trend=0.9, smoothing_seasonal=0.9, optimized=False)
print("pure", repr(float(fit.forecast(1)[0])), "next season value", base[0])
# odd m
m = 7
series = [[2, 4, 9, 9, 4, 2, 1][i % m] for i in range(3 * m + 2)]
fit = sm.ExponentialSmoothing(series, trend="add", seasonal="add", seasonal_periods=m, initialization_method="estimated").fit(smoothing_level=0.9, smoothing_trend=0.9, smoothing_seasonal=0.9, optimized=False)
print("odd", repr(float(fit.forecast(1)[0])), series)
