from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from queuert_django import load_settings, start_chain

from shop.jobs import OrderRef, SendReceipt
from shop.models import Order


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    """Writes the order and starts its receipt chain in one transaction: both or neither."""
    alias = load_settings().database  # the shop's rows live beside queuert's tables
    reference = request.POST["reference"]
    try:
        with transaction.atomic(using=alias):
            chain = start_chain(SendReceipt(OrderRef(reference)))
            Order.objects.using(alias).create(reference=reference)  # after: may fail
    except IntegrityError:
        return JsonResponse({"error": "this order exists"}, status=409)
    return JsonResponse({"chain_id": chain.id}, status=201)
