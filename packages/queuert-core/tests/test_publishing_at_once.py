"""After-commit publishing to notify adapters that publish without awaiting (in-process, no-op):
at once, in the caller, with no task; through a subclass's overrides otherwise."""

from __future__ import annotations

from queuert import InProcessNotifyAdapter
from queuert._publishing import Publishing
from queuert.in_memory.notify import NoopNotifyAdapter
from queuert.observability import NoopObservability, RecordingObservability


async def test_in_process_messages_are_delivered_in_the_call_with_no_task() -> None:
    notify = InProcessNotifyAdapter()
    publishing = Publishing(notify, NoopObservability())
    closed: list[str] = []
    scheduled: list[str] = []
    await notify.listen_chain_closed("chain-1", lambda: closed.append("chain-1"))
    await notify.listen_job_scheduled(["mail"], scheduled.append)
    publishing.publish_later({"mail": 2}, set(), {"chain-1"}, set())
    # no await in between: delivered by the call itself
    assert closed == ["chain-1"] and scheduled == ["mail"]
    assert publishing._publisher._task is None
    assert await notify.consume_wake_hint("mail")
    assert await notify.consume_wake_hint("mail")
    assert not await notify.consume_wake_hint("mail")
    await notify.close()


async def test_messages_a_listener_publishes_come_after_the_current_ones() -> None:
    notify = InProcessNotifyAdapter()
    publishing = Publishing(notify, NoopObservability())
    order: list[str] = []

    def first_closed() -> None:
        order.append("chain-1")
        publishing.publish_later({}, set(), {"chain-2"}, set())
        order.append("published from the callback")

    await notify.listen_chain_closed("chain-1", first_closed)
    await notify.listen_chain_closed("chain-2", lambda: order.append("chain-2"))
    await notify.listen_job_ownership_lost("job-1", lambda: order.append("job-1"))
    publishing.publish_later({}, set(), {"chain-1"}, {"job-1"})
    assert order == ["chain-1", "published from the callback", "job-1", "chain-2"]
    await notify.close()


class Recording(InProcessNotifyAdapter):
    """Overrides how chain-closed messages are sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def notify_chain_closed(self, chain_id: str) -> None:
        self.sent.append(chain_id)
        await super().notify_chain_closed(chain_id)


async def test_a_subclass_overriding_a_send_gets_its_messages_through_the_override() -> None:
    notify = Recording()
    assert not notify.publishes_at_once()
    publishing = Publishing(notify, NoopObservability())
    closed: list[str] = []
    await notify.listen_chain_closed("chain-1", lambda: closed.append("chain-1"))
    publishing.publish_later({}, set(), {"chain-1"}, set())
    await publishing.wait_published()
    assert notify.sent == ["chain-1"] and closed == ["chain-1"]
    await notify.close()


async def test_a_closed_adapter_is_reported_as_a_notify_error_never_raised() -> None:
    for notify in (InProcessNotifyAdapter(), NoopNotifyAdapter()):
        assert notify.publishes_at_once()
        recording = RecordingObservability()
        publishing = Publishing(notify, recording)
        await notify.close()
        publishing.publish_later({}, set(), {"chain-1"}, set())
        assert [event.name for event in recording.events] == ["notify_adapter_error"]
