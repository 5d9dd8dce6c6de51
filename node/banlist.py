"""Bans: "host:port" keys refused for a while after their peer misbehaved."""

BAN_SECONDS = 600


class BanList:
    def __init__(self):
        self.bans: dict[str, tuple[float, str]] = {}  # key -> (until, reason)

    def ban(self, key: str, reason: str, now: float) -> None:
        self.bans[key] = (now + BAN_SECONDS, reason)

    def is_banned(self, key: str, now: float) -> bool:
        ban = self.bans.get(key)
        if ban and ban[0] <= now:
            del self.bans[key]
            return False
        return ban is not None

    def expire(self, now: float) -> None:
        for key in [k for k, (until, _) in self.bans.items() if until <= now]:
            del self.bans[key]

    def entries(self, now: float) -> list[dict]:
        return [{"addr": key, "until": int(until), "reason": reason}
                for key, (until, reason) in self.bans.items() if until > now]

    def clear(self) -> None:
        self.bans.clear()
