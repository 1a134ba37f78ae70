"""Medical-waste manifest detectors 医疗废物全过程监管."""
