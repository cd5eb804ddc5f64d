package com.paycore.examples;

import com.paycore.client.WebhookVerificationException;
import com.paycore.client.WebhookVerifier;
import com.paycore.client.model.Event;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * A merchant's webhook endpoint (JDK HTTP server only): verifies {@code X-Paycore-Signature} over the
 * raw body before believing anything, answers 200 only for a verified event (paycore retries
 * otherwise) and acts once per {@code event_id} (delivery is at least once).
 */
public final class WebhookReceiver implements AutoCloseable {
    private final HttpServer server;
    private final WebhookVerifier verifier;
    private final Set<String> seen = ConcurrentHashMap.newKeySet();
    /** Verified events, once each, in arrival order. */
    public final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
    /** Why deliveries were refused. */
    public final BlockingQueue<String> refused = new LinkedBlockingQueue<>();

    public WebhookReceiver(int port, WebhookVerifier verifier) throws IOException {
        this.verifier = verifier;
        this.server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        server.createContext("/paycore/webhook", this::handle);
        server.start();
    }

    public String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/paycore/webhook";
    }

    private void handle(HttpExchange ex) throws IOException {
        byte[] body;
        try (InputStream in = ex.getRequestBody()) {
            body = in.readAllBytes();
        }
        int status;
        try {
            Event e = verifier.verify(ex.getRequestHeaders(), body);
            if (seen.add(e.eventId())) {
                events.add(e);   // here a real merchant marks the order paid, once
            }
            status = 200;
        } catch (WebhookVerificationException e) {
            refused.add(e.getMessage());
            status = 400;
        }
        ex.sendResponseHeaders(status, -1);
        ex.close();
    }

    @Override
    public void close() {
        server.stop(0);
    }

    public static void main(String[] args) throws Exception {
        WebhookReceiver r = new WebhookReceiver(args.length > 0 ? Integer.parseInt(args[0]) : 8099,
                WebhookVerifier.of(System.getenv("PAYCORE_SECRET")));
        System.out.println("listening on " + r.url());
        while (true) {
            Event e = r.events.take();
            System.out.println(e.type() + " " + e.payment().id() + " " + e.payment().status());
        }
    }
}
