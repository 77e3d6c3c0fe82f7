"""``budgetvakt web``: the monthly follow-up in a browser and a JSON API under ``/api/v1/``."""
