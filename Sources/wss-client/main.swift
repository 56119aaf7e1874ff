// wss-client: a command-line WebSocket client on the WSClient library (see WSSClient.swift).
import ToolSupport

WSSClient.mainWithOneLineErrors()
