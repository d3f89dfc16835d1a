"""A blue/green deploy paused at its gate survives kill -9: the same reply's buttons still work."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.gates import CONTINUE_ACTION
from tests.faults.process import BotProcess, launch
from tests.slackview import final_parent, parents, service, thread_text
from tests.test_gates_e2e import MINUTE, PAUSED, buttons, pause_after_test_traffic, seed, shop_catalog

CATALOG = """
region: us-east-1
apps:
  shop:
    container: web
    image: {image}
    environments:
      production:
        cluster: bg
        service: shop
        channel: C0PROD
        timeout: 60
"""


async def test_kill_9_while_paused_then_the_same_buttons_continue_the_deploy(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    world.simulator.minute_seconds = MINUTE
    seed(world, hooks=[pause_after_test_traffic()])
    catalog = tmp_path / "tugboat.yml"
    image = shop_catalog().apps["shop"].image
    catalog.write_text(CATALOG.format(image=image))
    state = f"sqlite:///{tmp_path / 'state.db'}"

    first = await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    fake.slash_command("/deploy", "shop production v2", user="U0DEV", channel="C0PROD")
    parent = await wait_for(lambda: next(iter(parents(fake, "C0PROD")), None), timeout=20, what="thread")
    reply = await wait_for(
        lambda: next((m for m in fake.thread("C0PROD", parent.ts) if PAUSED in m.flat), None),
        timeout=30,
        what="the pause's reply",
    )
    # The parent shows the pause once the reply is posted and saved with the record.
    await wait_for(
        lambda: (m := fake.message("C0PROD", parent.ts)) and "paused at POST_TEST_TRAFFIC_SHIFT" in m.flat,
        timeout=20,
        what="the parent showing the pause",
    )
    first.kill()

    await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    await thread_text(fake, parent, must_contain="Tugboat restarted and picked this up again", timeout=30)
    fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user="U0DEV")
    final = await final_parent(fake, "C0PROD", timeout=60)

    assert final.ts == parent.ts and len(parents(fake, "C0PROD")) == 1
    assert "*Succeeded*" in final.flat
    assert str(service(world, "bg", "shop")["taskDefinition"]).endswith("shop:2")
    assert world.calls()["ecs:ContinueServiceDeployment"] == 1
    pauses = [m for m in fake.thread("C0PROD", parent.ts) if PAUSED in m.flat]
    assert [m.ts for m in pauses] == [reply.ts], "the same reply, not a second one"
    assert buttons(fake.message("C0PROD", reply.ts) or reply) == []
