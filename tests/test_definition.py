"""Actor definitions: the decorators register what they say and give the function back unchanged."""

import pytest

from rivetgreen import actor
from rivetgreen.actor.definition import HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_each_hook_decorator_registers_its_own_hook(hook):
    definition = actor("kind")

    def function(c, *args):
        return None

    assert getattr(definition, hook)(function) is function
    assert definition.hooks == {hook: function}
    with pytest.raises(ValueError, match=f"already has a {hook} hook"):
        getattr(definition, hook)(function)


def test_action_decorator_in_both_forms_returns_the_function():
    definition = actor("kind")

    def increment(c, amount=1):
        return amount

    def count(c):
        return 0

    assert definition.action(increment) is increment
    assert definition.action("getCount")(count) is count
    assert definition.action()(count) is count
    assert definition.actions == {"increment": increment, "getCount": count, "count": count}
    with pytest.raises(ValueError, match="already has an action named 'increment'"):
        definition.action(increment)
