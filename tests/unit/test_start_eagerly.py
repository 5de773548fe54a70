"""start_eagerly: handlers run at once, and like tasks keep their context variables to themselves."""
import asyncio
import contextvars

from fastio.base.util import start_eagerly

cv = contextvars.ContextVar("cv", default="unset")


async def finishes(x):
    cv.set("finished")
    return x * 2


async def suspends():
    cv.set("suspended")
    await asyncio.sleep(0)
    return cv.get()


def test_value_now_or_a_task_and_context_kept_inside():
    async def main():
        assert start_eagerly(finishes(21)) == 42          # no task: the value at once
        assert cv.get() == "unset"
        task = start_eagerly(suspends())
        assert isinstance(task, asyncio.Task)
        assert cv.get() == "unset"
        assert await task == "suspended"
        assert start_eagerly("not a coroutine") == "not a coroutine"

    asyncio.run(main())


def test_current_task_and_wait_for_before_the_first_await():
    async def handler():
        # asyncio.wait_for needs no current task before 3.12 and gets one from 3.12 on
        fut = asyncio.get_running_loop().create_future()
        fut.set_result("ok")
        return await asyncio.wait_for(fut, 1)

    async def main():
        r = start_eagerly(handler())
        assert (await r if isinstance(r, asyncio.Task) else r) == "ok"

    asyncio.run(main())
