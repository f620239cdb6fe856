using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>The gateway's three APIs over real sockets, with fake cloud and Ollama servers behind it.</summary>
public sealed class GatewayHttpTests
{
    private const string OpenAIBody = """{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""";
    private const string AnthropicBody = """{"model":"ollamacontinuity","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hi"}]}""";
    private const string OllamaBody = """{"model":"llama3.1:8b","messages":[{"role":"user","content":"hi"}],"stream":false}""";

    [Fact]
    public async Task OpenAI_plain_answer_comes_from_the_cloud_with_route_headers_and_clean_text()
    {
        await using var g = await GatewayHarness.StartAsync();
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = JsonNode.Parse(body)!;
        Assert.Equal("cloud: reply to hi", (string?)json["choices"]![0]!["message"]!["content"]);
        Assert.Equal("chat.completion", (string?)json["object"]);
        Assert.Equal("Cloud", GatewayHarness.Header(r, ChatHandler.BackendHeader));
        Assert.Equal("", GatewayHarness.Header(r, ChatHandler.ReasonHeader));
        Assert.Matches("^[0-9a-f]{32}$", GatewayHarness.Header(r, ChatHandler.RequestIdHeader));
        // The cloud key is the gateway's, never the client's token.
        Assert.True(g.Cloud.Requests.TryPeek(out var sent));
        Assert.Equal("Bearer sk-test-cloud-key", sent!.Headers["Authorization"]);
    }

    [Fact]
    public async Task OpenAI_request_fails_over_to_Ollama_and_says_why_in_headers_only()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = FaultSpec.Http(503);
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("ollama: reply to hi", (string?)JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]);
        Assert.Equal("Ollama", GatewayHarness.Header(r, ChatHandler.BackendHeader));
        Assert.Equal("ServerError", GatewayHarness.Header(r, ChatHandler.ReasonHeader));
        Assert.DoesNotContain("Cloud unavailable", body);
        Assert.Equal(1, g.Ollama.Hits);
    }

    [Fact]
    public async Task OpenAI_stream_is_sse_chunks_ending_in_DONE_with_headers_sent_before_the_text()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = new FaultSpec(FaultKind.ResetBeforeHeaders);
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", """{"model":"ollamacontinuity","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me"}]}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.StartsWith("text/event-stream", r.Content.Headers.ContentType!.ToString());
        Assert.Equal("Ollama", GatewayHarness.Header(r, ChatHandler.BackendHeader));
        Assert.Equal("ConnectionReset", GatewayHarness.Header(r, ChatHandler.ReasonHeader));
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var text = string.Concat(events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).Where(j => j["choices"]!.AsArray().Count > 0)
            .Select(j => (string?)j["choices"]![0]!["delta"]!["content"]));
        Assert.Equal("ollama: reply to stream me", text);
        Assert.NotNull(JsonNode.Parse(events[^2]["data: ".Length..])!["usage"]);
    }

    [Fact]
    public async Task Anthropic_request_is_served_by_an_OpenAI_cloud_and_the_answer_translated_back()
    {
        await using var g = await GatewayHarness.StartAsync();
        var (r, body) = await g.SendAsync(g.Post("/v1/messages", AnthropicBody));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = JsonNode.Parse(body)!;
        Assert.Equal("message", (string?)json["type"]);
        Assert.Equal("cloud: reply to hi", (string?)json["content"]![0]!["text"]);
        Assert.Equal("end_turn", (string?)json["stop_reason"]);
        // The system prompt reached the OpenAI cloud as a system message.
        Assert.True(g.Cloud.Requests.TryPeek(out var sent));
        Assert.Equal("system", (string?)sent!.Json!["messages"]![0]!["role"]);
        Assert.Equal(100, (int)sent.Json["max_tokens"]!);
    }

    [Fact]
    public async Task Anthropic_stream_has_the_event_sequence_the_sdk_expects()
    {
        await using var g = await GatewayHarness.StartAsync(FakeApi.Anthropic);
        var (r, body) = await g.SendAsync(g.Post("/v1/messages", AnthropicBody.Replace("\"max_tokens\"", "\"stream\":true,\"max_tokens\"")));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var names = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Split('\n')[0]).ToArray();
        Assert.Equal("event: message_start", names[0]);
        Assert.Equal("event: content_block_start", names[1]);
        Assert.Contains("event: content_block_delta", names);
        Assert.Equal(["event: content_block_stop", "event: message_delta", "event: message_stop"], names[^3..]);
        Assert.True(g.Cloud.Requests.TryPeek(out var sent));
        Assert.Equal("sk-test-cloud-key", sent!.Headers["x-api-key"]);
    }

    [Fact]
    public async Task Ollama_chat_and_generate_are_served_cloud_first_in_Ollama_shapes()
    {
        await using var g = await GatewayHarness.StartAsync();
        var (r, body) = await g.SendAsync(g.Post("/api/chat", OllamaBody));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = JsonNode.Parse(body)!;
        Assert.Equal("cloud: reply to hi", (string?)json["message"]!["content"]);
        Assert.True((bool)json["done"]!);

        // /api/generate streams unless told otherwise: NDJSON, the last line done:true.
        var (r2, body2) = await g.SendAsync(g.Post("/api/generate", """{"model":"llama3.1:8b","prompt":"gen"}"""));
        Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
        Assert.Equal("application/x-ndjson", r2.Content.Headers.ContentType!.MediaType);
        var lines = body2.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal("cloud: reply to gen", string.Concat(lines.Select(l => (string?)l["response"])));
        Assert.True((bool)lines[^1]["done"]!);
        Assert.All(lines[..^1], l => Assert.False((bool)l["done"]!));
    }

    [SkippableFact]
    public async Task Content_policy_400_is_passed_through_unchanged_and_never_sent_to_Ollama()
    {
        var path = WireFixture("oa_400_content_policy_violation.json");
        Skip.IfNot(File.Exists(path), "the wire fixtures (shared/wire-fixtures) are not beside the repository");
        await using var g = await GatewayHarness.StartAsync();
        var fixture = await File.ReadAllTextAsync(path);
        g.Cloud.Fault = FaultSpec.Http(400, fixture);
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var upstream = JsonNode.Parse(fixture)!["error"]!;
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal((string?)upstream["message"], (string?)error["message"]);
        Assert.Equal("content_policy_violation", (string?)error["code"]);
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.Equal(0, g.Ollama.Hits);
    }

    [Theory]
    [InlineData(null, "/v1/chat/completions")]
    [InlineData("oc_wrong_token_0123456789abcdefghij", "/v1/chat/completions")]
    [InlineData(null, "/v1/messages")]
    [InlineData("short", "/api/chat")]
    [InlineData(null, "/metrics")]
    public async Task Missing_or_wrong_client_token_is_refused_with_401_and_nothing_is_forwarded(string? token, string path)
    {
        await using var g = await GatewayHarness.StartAsync();
        var m = path == "/metrics" ? new HttpRequestMessage(HttpMethod.Get, path) : g.Post(path, path == "/v1/messages" ? AnthropicBody : path == "/api/chat" ? OllamaBody : OpenAIBody, token);
        var (r, body) = await g.SendAsync(m);
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        Assert.NotNull(r.Headers.WwwAuthenticate.FirstOrDefault());
        var json = JsonNode.Parse(body)!;
        Assert.NotNull(json["error"]);
        if (path == "/v1/messages")
        {
            Assert.Equal("authentication_error", (string?)json["error"]!["type"]);
        }

        Assert.Equal(0, g.Cloud.Hits + g.Ollama.Hits);
    }

    [Fact]
    public async Task Client_token_in_x_api_key_is_accepted_and_healthz_needs_none()
    {
        await using var g = await GatewayHarness.StartAsync();
        var m = g.Post("/v1/messages", AnthropicBody, token: null);
        m.Headers.Add("x-api-key", GatewayHarness.AppToken);
        var (r, _) = await g.SendAsync(m);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var (h, hb) = await g.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, h.StatusCode);
        Assert.Equal("ok", (string?)JsonNode.Parse(hb)!["status"]);
    }

    [Fact]
    public async Task Workflow_from_the_header_or_the_token_default_routes_through_per_workflow_contingency()
    {
        var contingency = new WorkflowContingency();
        await using var g = await GatewayHarness.StartAsync(contingency: contingency);
        contingency.Workflows.Add("hr-records"); // Enable-AiContingency -Workflow hr-records: the next request sees it

        var viaHeader = g.Post("/v1/chat/completions", OpenAIBody);
        viaHeader.Headers.Add(ChatHandler.WorkflowHeader, "hr-records");
        var (r1, _) = await g.SendAsync(viaHeader);
        Assert.Equal("Ollama", GatewayHarness.Header(r1, ChatHandler.BackendHeader));
        Assert.Equal("Contingency", GatewayHarness.Header(r1, ChatHandler.ReasonHeader));

        var (r2, _) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody, GatewayHarness.HrToken));
        Assert.Equal("Ollama", GatewayHarness.Header(r2, ChatHandler.BackendHeader));

        var (r3, _) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal("Cloud", GatewayHarness.Header(r3, ChatHandler.BackendHeader));
        Assert.Equal(1, g.Cloud.Hits);

        // The streamed route says the same before the first token.
        var streamed = g.Post("/v1/chat/completions", OpenAIBody.Replace("\"messages\"", "\"stream\":true,\"messages\""), GatewayHarness.HrToken);
        var (r4, _) = await g.SendAsync(streamed);
        Assert.Equal("Contingency", GatewayHarness.Header(r4, ChatHandler.ReasonHeader));

        var log = await File.ReadAllTextAsync(g.LogPath);
        Assert.Contains("hr-records", log);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "{\"model\": \"ollamacontinuity\", \"messages\": [", 400, "invalid_json")]
    [InlineData("/v1/chat/completions", "[1,2]", 400, "invalid_json")]
    [InlineData("/v1/chat/completions", """{"model":"gpt-unknown","messages":[{"role":"user","content":"hi"}]}""", 404, "model_not_found")]
    [InlineData("/v1/chat/completions", """{"model":"ollamacontinuity","system":"x","messages":[{"role":"user","content":"hi"}]}""", 400, "unsupported_field")]
    [InlineData("/v1/messages", """{"model":"ollamacontinuity","max_tokens":10,"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}""", 400, null)]
    [InlineData("/v1/messages", """{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""", 400, null)]
    [InlineData("/api/chat", """{"model":"llama3.1:8b","prompt":"hi"}""", 400, null)]
    [InlineData("/api/generate", """{"model":"llama3.1:8b","messages":[{"role":"user","content":"hi"}]}""", 400, null)]
    [InlineData("/v1/chat/completions", """{"model":"ollamacontinuity","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", 400, "unsupported_content")]
    [InlineData("/v1/chat/completions", """{"model":"ollamacontinuity","messages":[]}""", 400, "missing_messages")]
    public async Task Bad_input_gets_a_clear_status_and_json_body_nothing_is_forwarded_and_the_gateway_keeps_serving(string path, string body, int status, string? code)
    {
        await using var g = await GatewayHarness.StartAsync();
        var (r, text) = await g.SendAsync(g.Post(path, body));
        Assert.Equal(status, (int)r.StatusCode);
        var json = JsonNode.Parse(text)!;
        Assert.NotNull(json["error"]);
        if (code is not null)
        {
            Assert.Equal(code, (string?)json["error"]!["code"]);
        }

        Assert.Equal(0, g.Cloud.Hits + g.Ollama.Hits);
        var (ok, _) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task A_100_MB_body_is_refused_with_413_before_it_is_read_and_the_gateway_keeps_serving()
    {
        await using var g = await GatewayHarness.StartAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, g.Uri.Port);
        var s = tcp.GetStream();
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GatewayHarness.AppToken}\r\nContent-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n";
        await s.WriteAsync(Encoding.ASCII.GetBytes(head));
        await s.WriteAsync(Encoding.ASCII.GetBytes("{\"model\":\"ollamacontinuity\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 60_000)));
        var response = await ReadResponseAsync(s);
        Assert.StartsWith("HTTP/1.1 413", response);
        Assert.Contains("request_too_large", response);
        Assert.Contains("application/json", response);

        // Chunked, no Content-Length: refused once the limit is crossed.
        await using var small = await GatewayHarness.StartAsync(configure: o => o with { MaxBodyBytes = 16 * 1024 });
        var big = new StringContent("{\"model\":\"ollamacontinuity\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('b', 40_000) + "\"}]}", Encoding.UTF8, "application/json");
        var m = small.Post("/v1/chat/completions", "{}");
        m.Content = new StreamContent(new MemoryStream(await big.ReadAsByteArrayAsync()));
        m.Content.Headers.ContentType = new("application/json");
        m.Headers.TransferEncodingChunked = true;
        var (r2, body2) = await small.SendAsync(m);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r2.StatusCode);
        Assert.Equal("request_too_large", (string?)JsonNode.Parse(body2)!["error"]!["code"]);
        Assert.Equal(0, small.Cloud.Hits + g.Cloud.Hits);
        var (ok, _) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Theory]
    [InlineData("hr records")]
    [InlineData("../../etc")]
    [InlineData("hr\u00e9")]
    public async Task A_workflow_header_that_is_not_a_plain_name_is_refused_with_400(string value)
    {
        await using var g = await GatewayHarness.StartAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, g.Uri.Port);
        var s = tcp.GetStream();
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GatewayHarness.AppToken}\r\n{ChatHandler.WorkflowHeader}: {value}\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(OpenAIBody)}\r\n\r\n{OpenAIBody}";
        await s.WriteAsync(Encoding.UTF8.GetBytes(head));
        var response = await ReadResponseAsync(s);
        Assert.StartsWith("HTTP/1.1 400", response);
        Assert.Contains("invalid_workflow", response);
        Assert.Equal(0, g.Cloud.Hits);
    }

    [Fact]
    public async Task Header_injection_is_refused_and_client_headers_never_reach_the_route_headers()
    {
        await using var g = await GatewayHarness.StartAsync();
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, g.Uri.Port);
            var s = tcp.GetStream();
            // A control character inside a header value: refused by Kestrel before any handler runs.
            await s.WriteAsync(Encoding.ASCII.GetBytes($"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GatewayHarness.AppToken}\r\nX-OllamaContinuity-Workflow: a\0b\r\n\r\n"));
            Assert.StartsWith("HTTP/1.1 400", await ReadResponseAsync(s));
        }

        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, g.Uri.Port);
            var s = tcp.GetStream();
            // A bare LF is a line end to Kestrel: it makes a second request header, never a response header.
            var body = OpenAIBody;
            await s.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GatewayHarness.AppToken}\r\nX-OllamaContinuity-Workflow: a\nX-Evil: injected\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n{body}"));
            var response = await ReadResponseAsync(s);
            Assert.StartsWith("HTTP/1.1 200", response);
            Assert.DoesNotContain("X-Evil", response, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("injected", response);
        }

        var spoof = g.Post("/v1/chat/completions", OpenAIBody);
        spoof.Headers.Add(ChatHandler.BackendHeader, "Ollama");
        spoof.Headers.Add(ChatHandler.ReasonHeader, "Spoofed");
        var (r, _) = await g.SendAsync(spoof);
        Assert.Equal("Cloud", GatewayHarness.Header(r, ChatHandler.BackendHeader));
        Assert.Equal("", GatewayHarness.Header(r, ChatHandler.ReasonHeader));
    }

    [Fact]
    public async Task Per_token_rate_limit_answers_429_with_Retry_After_and_leaves_other_clients_alone()
    {
        await using var g = await GatewayHarness.StartAsync(configure: o => o with { RatePerMinute = 2 });
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody))).Response.StatusCode);
        }

        var (r, body) = await g.SendAsync(g.Post("/v1/messages", AnthropicBody));
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter);
        Assert.Equal("rate_limit_error", (string?)JsonNode.Parse(body)!["error"]!["type"]);
        Assert.Equal(HttpStatusCode.OK, (await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody, GatewayHarness.HrToken))).Response.StatusCode);
        Assert.Equal(3, g.Cloud.Hits);
    }

    [Fact]
    public async Task Concurrency_limit_answers_429_while_the_gateway_is_full()
    {
        await using var g = await GatewayHarness.StartAsync(configure: o => o with { MaxConcurrentRequests = 1 });
        g.Cloud.Fault = new FaultSpec(FaultKind.SlowFirstByte) { Delay = TimeSpan.FromSeconds(1.5) };
        var slow = g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        while (g.Cloud.Hits == 0)
        {
            await Task.Delay(20);
        }

        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody, GatewayHarness.HrToken));
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.Equal("too_many_concurrent_requests", (string?)JsonNode.Parse(body)!["error"]!["code"]);
        Assert.Equal(HttpStatusCode.OK, (await slow).Response.StatusCode);
    }

    [Fact]
    public async Task A_slowloris_client_is_cut_off_while_others_are_served()
    {
        await using var g = await GatewayHarness.StartAsync(configure: o => o with { RequestHeadersTimeout = TimeSpan.FromSeconds(1) });
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, g.Uri.Port);
        var s = tcp.GetStream();
        await s.WriteAsync("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: "u8.ToArray());
        var (ok, _) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(6));
        var buffer = new byte[4096];
        var total = new StringBuilder();
        int n;
        while ((n = await s.ReadAsync(buffer, cts.Token)) > 0)
        {
            total.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        // Kestrel answers 408 (or just closes); either way the connection is gone well before the 6 s bound.
        Assert.True(total.Length == 0 || total.ToString().StartsWith("HTTP/1.1 408", StringComparison.Ordinal), total.ToString());
    }

    [Fact]
    public async Task A_stream_cut_after_text_is_continued_by_Ollama_whole_never_truncated_or_duplicated()
    {
        await using var g = await GatewayHarness.StartAsync(cloudTimeouts: new BackendTimeouts { Total = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(2), Stall = TimeSpan.FromMilliseconds(400) });
        g.Cloud.Answer = _ => "a long answer that will be cut in the middle of it";
        g.Cloud.Fault = new FaultSpec(FaultKind.StallMidStream);
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody.Replace("\"messages\"", "\"stream\":true,\"messages\"")));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        if (events[^1] == "data: [DONE]")
        {
            // Rescued: Ollama continued the partial answer, so the client's text is the cloud's part and then the
            // continuation, never a truncated answer and never the start of the answer twice.
            var text = string.Concat(events[..^1].Select(e => JsonNode.Parse(e[6..])!).Where(j => j["choices"]!.AsArray().Count > 0).Select(j => (string?)j["choices"]![0]!["delta"]!["content"]));
            Assert.StartsWith("a long answer", text);
            Assert.Matches("ollama: reply to [^\\n]+$", text);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(text, "a long answer"));
            // The route headers left with the first token (the cloud's); Ollama's part is in the request log.
            Assert.Equal(1, g.Ollama.Hits);
        }
        else
        {
            var last = JsonNode.Parse(events[^1][6..])!;
            Assert.Equal("stream_interrupted", (string?)last["error"]!["code"]);
            Assert.Contains("data: {\"id\"", body);
        }
    }

    [Fact]
    public async Task A_stream_cut_after_text_that_Ollama_cannot_continue_ends_in_an_in_band_error_never_duplicated_text()
    {
        await using var g = await GatewayHarness.StartAsync(cloudTimeouts: new BackendTimeouts { Total = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(2), Stall = TimeSpan.FromMilliseconds(400) });
        g.Cloud.Answer = _ => "a long answer that will be cut in the middle of it";
        g.Cloud.Fault = new FaultSpec(FaultKind.StallMidStream);
        g.Ollama.RejectTrailingAssistant = true;
        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody.Replace("\"messages\"", "\"stream\":true,\"messages\"")));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEqual("data: [DONE]", events[^1]);
        var last = JsonNode.Parse(events[^1][6..])!;
        Assert.Equal("stream_interrupted", (string?)last["error"]!["code"]);
        Assert.DoesNotContain("ollama: reply to", body);
    }

    [Fact]
    public async Task Metrics_count_requests_failovers_by_reason_circuits_and_latency_in_prometheus_text()
    {
        await using var g = await GatewayHarness.StartAsync();
        await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody));
        g.Cloud.Fault = FaultSpec.Http(503);
        await g.SendAsync(g.Post("/api/chat", OllamaBody));
        await g.SendAsync(g.Post("/v1/chat/completions", OpenAIBody, token: null));
        var m = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        m.Headers.Authorization = new("Bearer", GatewayHarness.AppToken);
        var (r, text) = await g.SendAsync(m);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.StartsWith("text/plain", r.Content.Headers.ContentType!.ToString());
        Assert.Contains("ollamacontinuity_gateway_requests_total{api=\"openai\",backend=\"Cloud\",code=\"200\"} 1", text);
        Assert.Contains("ollamacontinuity_gateway_requests_total{api=\"ollama-chat\",backend=\"Ollama\",code=\"200\"} 1", text);
        Assert.Contains("ollamacontinuity_gateway_failovers_total{reason=\"ServerError\"} 1", text);
        Assert.Contains("ollamacontinuity_gateway_rejected_total{reason=\"unauthorized\"} 1", text);
        var circuit = text.Split('\n').SingleOrDefault(l => l.StartsWith("ollamacontinuity_circuit_state{", StringComparison.Ordinal));
        // One success, then a 503 retried once: 2 of 3 cloud calls within 30 s failed, so the ratio rule opened it (2).
        Assert.Matches("^ollamacontinuity_circuit_state\\{endpoint=\"http://127.0.0.1:\\d+/v1/chat/completions\"\\} 2$", circuit ?? text);
        Assert.Contains("ollamacontinuity_gateway_request_duration_seconds_count{api=\"openai\"} 1", text);
        Assert.Contains("# TYPE ollamacontinuity_gateway_request_duration_seconds histogram", text);
    }

    [Fact]
    public async Task Models_list_names_what_the_gateway_accepts()
    {
        await using var g = await GatewayHarness.StartAsync(configure: o => o with { ModelAliases = ["gpt-4o-mini"] });
        var m = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        m.Headers.Authorization = new("Bearer", GatewayHarness.AppToken);
        var (r, text) = await g.SendAsync(m);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var ids = JsonNode.Parse(text)!["data"]!.AsArray().Select(x => (string)x!["id"]!).ToArray();
        Assert.Equal(["ollamacontinuity", "cloud-model", "llama3.1:8b", "gpt-4o-mini"], ids);
    }

    [Fact]
    public void Binding_beyond_loopback_needs_force_and_tokens_are_always_required()
    {
        var lan = new GatewayOptions { Bind = IPAddress.Any };
        var tokensFile = Path.Combine(TestPaths.New("gw-opts"));
        Directory.CreateDirectory(tokensFile);
        tokensFile = Path.Combine(tokensFile, "t.json");
        File.WriteAllText(tokensFile, $$"""{"tokens":[{"name":"a","token":"{{GatewayHarness.AppToken}}"}]}""");
        var tokens = ClientTokens.Load(tokensFile);
        Assert.Contains("--force", Assert.Throws<ArgumentException>(() => lan.Validate(tokens)).Message);
        (lan with { Force = true }).Validate(tokens);
        Assert.Contains("tokens", Assert.Throws<ArgumentException>(() => new GatewayOptions().Validate(null)).Message);
        Assert.Equal(IPAddress.Loopback, GatewayOptions.Parse([]).Bind);
        Assert.Equal(IPAddress.Any, GatewayOptions.Parse(["--bind", "0.0.0.0", "--force"]).Bind);
        Assert.Throws<ArgumentException>(() => GatewayOptions.Parse(["--bind", "not-an-ip"]));
        Assert.NotNull(tokens.Find(GatewayHarness.AppToken));
        Assert.Null(tokens.Find(GatewayHarness.AppToken + "x"));
        Assert.Null(tokens.Find(GatewayHarness.AppToken[..^1]));
    }

    internal static string WireFixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "shared", "wire-fixtures", name), Path.Combine(dir.FullName, "..", "shared", "wire-fixtures", name) })
            {
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return Path.Combine("/work/shared/wire-fixtures", name);
    }

    private static async Task<string> ReadResponseAsync(Stream s)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[8192];
        var sb = new StringBuilder();
        try
        {
            int n;
            while ((n = await s.ReadAsync(buffer, cts.Token)) > 0)
            {
                sb.Append(Encoding.UTF8.GetString(buffer, 0, n));
                var text = sb.ToString();
                var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end > 0 && System.Text.RegularExpressions.Regex.Match(text, "Content-Length: (\\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase) is { Success: true } cl
                    && Encoding.UTF8.GetByteCount(text[(end + 4)..]) >= int.Parse(cl.Groups[1].Value))
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
            // The server closed after answering.
        }

        return sb.ToString();
    }
}
