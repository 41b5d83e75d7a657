"""Sends exactly TOTAL `GET PATH` requests with a bearer token over CONNECTIONS keep-alive
connections (one thread each); exits non-zero if any answer is not 200.

Usage: python3 fixed_requests.py PORT TOKEN TOTAL CONNECTIONS [PATH]
"""
import http.client
import sys
import threading


def main():
    port, token, total, connections = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    path = sys.argv[5] if len(sys.argv) > 5 else "/auth/me"
    failures = []

    def send(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(count):
            connection.request("GET", path, headers={"Authorization": "Bearer " + token})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)

    shares = [total // connections + (i < total % connections) for i in range(connections)]
    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"{len(failures)} answers were not 200, e.g. {failures[:5]}")


if __name__ == "__main__":
    main()
