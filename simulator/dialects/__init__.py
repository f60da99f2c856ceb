"""Native protocols the simulator speaks besides the generic bank protocol: one module per
channel (alipay, wechatpay, stripe, iso20022) behind :class:`simulator.dialects.base.Dialect`,
gathered by :func:`simulator.dialects.registry.build_dialects`."""
