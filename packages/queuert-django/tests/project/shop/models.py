from django.db import models


class Order(models.Model):
    reference = models.CharField(max_length=40, unique=True)
    receipt_sent = models.BooleanField(default=False)
