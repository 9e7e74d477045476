"""The machinery of a study: profile -> run specs -> executors -> workers -> records.

``study`` parses a profile into typed objects and run specs; ``runner`` plans and hands
groups to an ``executors`` backend (this process, a local pool, Ray); ``worker`` trains,
scores and records one group under ``locks``; ``store`` and ``records`` own the files;
``evaluate`` is the one metric loop; ``numerics`` and ``environment`` say what a record's
numbers ran on; ``verify`` reruns committed records.
"""
