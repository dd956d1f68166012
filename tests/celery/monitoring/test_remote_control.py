"""The gpuorch mailbox: a reply queue of its own per remote-control call, and the names a worker can find."""

from gpuorch.celery.app import create_celery_app
from gpuorch.celery.monitoring.remote_control import Mailbox
from gpuorch.settings import Settings


def test_each_call_has_its_own_reply_queue_named_under_the_namespace():
    mailbox = Mailbox("ns", type="fanout")
    first, second = mailbox(connection=None), mailbox(connection=None)
    assert first.oid != second.oid
    for bound in (first, second):
        # The id a worker routes the reply with names the queue the caller reads.
        assert bound.reply_queue.name == f"ns.reply.{bound.oid}"
        assert bound.reply_queue.routing_key == bound.oid
        assert bound.reply_queue.exchange.name == "ns.reply"
    assert len(first.oid) == 32


def test_a_worker_listens_on_a_queue_named_after_it():
    queue = Mailbox("ns", type="fanout").get_queue("gpu@host")
    assert queue.name == "ns.pidbox.gpu@host"
    assert queue.exchange.name == "ns.pidbox" and queue.exchange.type == "fanout"


def test_the_app_mailbox_follows_the_namespace_setting():
    app = create_celery_app(Settings(monitoring_namespace="staging"))
    try:
        mailbox = app.control.mailbox
        assert mailbox.exchange.name == "staging.pidbox" and mailbox.reply_exchange.name == "staging.reply"
    finally:
        app.close()
