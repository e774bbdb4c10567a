"""The whole pretrained model (image and text sides) as a product: its export folder
(`export.py`), loading it in one call (`model.py`), and what it is evaluated by: zero-shot
classification and image-report retrieval (`zero_shot.py`, `retrieval.py`)."""
