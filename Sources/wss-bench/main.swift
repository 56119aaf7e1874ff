// wss-bench: being written.
print("wss-bench: not built yet")
