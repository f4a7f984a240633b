"""Black-Scholes / Black-76 greeks: known values, parity, finite differences, determinism."""

import numpy as np
import pytest

from domain.markets import black76_greeks, black_scholes_greeks


def test_black_scholes_textbook_values() -> None:
    # Hull: S=K=100, T=1, r=5%, sigma=20%.
    g = black_scholes_greeks([100.0, 100.0], 100.0, 1.0, 0.2, 0.05, [True, False])
    assert g.price[0] == pytest.approx(10.4506, abs=1e-4)
    assert g.price[1] == pytest.approx(5.5735, abs=1e-4)
    assert g.delta[0] == pytest.approx(0.6368, abs=1e-4)
    assert g.gamma[0] == pytest.approx(0.018762, abs=1e-6)
    assert g.vega[0] == pytest.approx(37.524, abs=1e-3)
    assert g.theta[0] == pytest.approx(-6.414, abs=1e-3)


def test_black76_haug_example() -> None:
    # Haug: futures option F=19, K=19, T=0.75, r=10%, sigma=28%: call = put = 1.7011.
    g = black76_greeks(19.0, 19.0, 0.75, 0.28, 0.10, [True, False])
    assert g.price[0] == pytest.approx(1.7011, abs=1e-4)
    assert g.price[1] == pytest.approx(1.7011, abs=1e-4)


CHAIN = {
    "spot": np.linspace(60.0, 140.0, 41),
    "strike": 100.0,
    "t_years": 0.37,
    "vol": 0.31,
    "rate": 0.03,
}


@pytest.mark.parametrize("dividend_yield", [0.0, 0.02])
def test_put_call_parity_for_price_delta_gamma_vega(dividend_yield: float) -> None:
    calls = black_scholes_greeks(**CHAIN, is_call=True, dividend_yield=dividend_yield)
    puts = black_scholes_greeks(**CHAIN, is_call=False, dividend_yield=dividend_yield)
    s, k, t, r = CHAIN["spot"], 100.0, 0.37, 0.03
    carry_df, rate_df = np.exp(-dividend_yield * t), np.exp(-r * t)
    np.testing.assert_allclose(calls.price - puts.price, s * carry_df - k * rate_df, atol=1e-10)
    np.testing.assert_allclose(calls.delta - puts.delta, carry_df, atol=1e-12)
    np.testing.assert_allclose(calls.gamma, puts.gamma, rtol=1e-12)
    np.testing.assert_allclose(calls.vega, puts.vega, rtol=1e-12)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences(is_call: bool) -> None:
    s, k, t, vol, r, q = np.array([80.0, 100.0, 125.0]), 100.0, 0.5, 0.25, 0.04, 0.01
    base = black_scholes_greeks(s, k, t, vol, r, is_call, q)
    h = 1e-3

    def price(**changes: float | np.ndarray) -> np.ndarray:
        args = {"spot": s, "strike": k, "t_years": t, "vol": vol, "rate": r, "dividend_yield": q}
        args.update(changes)
        return black_scholes_greeks(is_call=is_call, **args).price

    np.testing.assert_allclose(base.delta, (price(spot=s + h) - price(spot=s - h)) / (2 * h), atol=1e-6)
    gamma_fd = (price(spot=s + h) - 2 * base.price + price(spot=s - h)) / h**2
    np.testing.assert_allclose(base.gamma, gamma_fd, atol=1e-4)
    vega_fd = (price(vol=vol + h) - price(vol=vol - h)) / (2 * h)
    np.testing.assert_allclose(base.vega, vega_fd, rtol=1e-5)
    theta_fd = -(price(t_years=t + h) - price(t_years=t - h)) / (2 * h)
    np.testing.assert_allclose(base.theta, theta_fd, rtol=1e-5)


def test_expired_and_deterministic() -> None:
    g = black_scholes_greeks([90.0, 110.0], 100.0, 0.0, 0.2, 0.05, [True, True])
    assert g.price.tolist() == [0.0, 10.0]
    assert g.delta.tolist() == [0.0, 1.0]
    assert g.gamma.tolist() == [0.0, 0.0]
    first = black_scholes_greeks(**CHAIN, is_call=True)
    second = black_scholes_greeks(**CHAIN, is_call=True)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="positive"):
        black_scholes_greeks(0.0, 100.0, 1.0, 0.2, 0.05, True)
