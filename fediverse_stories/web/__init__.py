"""HTTP endpoints: HTML pages, forms, health; the ActivityPub endpoints join them here."""

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[int]):
    """`{name:id}` in a route: a database key, up to 18 digits (any of them fits 64 bits).

    Starlette's `int` matches any run of digits and then fails to convert 4,301 of them (a
    server error), and a key past 64 bits is an error in the database: such a path matches no
    route here and is a 404.
    """

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


# Before any route is built (the submodules build theirs when imported).
register_url_convertor("id", IdConvertor())
