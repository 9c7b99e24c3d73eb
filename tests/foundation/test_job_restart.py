"""A job survives its server: `exchange serve` killed with SIGKILL in the middle of a member
import, then started again, takes the job over once its lease has run out and imports every
member exactly once, with passwords that sign in."""

import signal
from pathlib import Path

import httpx

from tests.foundation.serving import CLIENT_TIMEOUT, Server, poll, populate

# Enough that hashing their passwords (production argon2id, ~0.25 s each, in the server)
# outlasts the kill that follows the job's first "running".
ROWS = 8


async def test_an_import_killed_with_its_server_is_finished_by_the_next_one(
    served_database: str, tmp_path: Path
) -> None:
    # A short lease, so that the restarted server takes the dead one's job over soon.
    server = Server(tmp_path / "data", served_database, job_lease_seconds=2, job_poll_seconds=0.2)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        try:
            await server.start()
            client.base_url = httpx.URL(server.url)
            department = (await populate(served_database, client))[0]
            rows = "".join(f"late-{n},迟到{n}\n" for n in range(ROWS))
            submitted = await client.post(
                f"/api/departments/{department.id}/members/import",
                files={"file": ("m.csv", f"username,display_name\n{rows}".encode(), "text/csv")},
                headers=department.coordinator,
            )
            assert submitted.status_code == 202, submitted.text
            url = submitted.headers["location"]

            async def state() -> dict:  # type: ignore[type-arg]
                return (await client.get(url, headers=department.coordinator)).json()

            async def hashing() -> bool:
                return (await state())["state"] == "running"

            await poll(hashing)
            await server.signal(signal.SIGKILL)
            await server.start()

            answers = []

            async def finished() -> bool:  # the first answer after success has the passwords
                answers.append(await state())
                return answers[-1]["state"] in ("succeeded", "failed")

            await poll(finished)
            assert await server.logged("job taken over")
            done = answers[-1]
            assert done["state"] == "succeeded", done
            assert done["result"]["imported"] == ROWS
            passwords = done["result"]["initial_passwords"]
            members = await client.get(
                f"/api/departments/{department.id}/members?limit=500",
                headers=department.coordinator,
            )
            names = [m["username"] for m in members.json()["items"]]
            assert sorted(n for n in names if n.startswith("late-")) == sorted(passwords)
            signed_in = await client.post(
                "/api/auth/token", json={"username": "late-7", "password": passwords["late-7"]}
            )
            assert signed_in.status_code == 200, signed_in.text
        finally:
            await server.stop()
