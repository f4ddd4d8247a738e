"""``fulfill certify``: Pax8's simulation tests for every order type, and a report for Pax8.

Pax8's go-live gate is a passed simulation test for every order type that applies to the
product. :mod:`~fulfillment.certify.plan` says which orders to simulate (realistic sequences
on one subscription, prerequisites added for the types asked, the failure path),
:mod:`~fulfillment.certify.run` posts each one to Pax8's simulation environment
(``POST /provision-simulations/order-events``) and follows it through the deployment's
real receiver, workers and adapter until its result is recorded at Pax8 (read back through
the API), and :mod:`~fulfillment.certify.report` writes what happened as Markdown and JSON.

Only the simulation credential set is ever used (the Pax8 client it runs with holds no
other), so no production data can be read or changed.
"""
