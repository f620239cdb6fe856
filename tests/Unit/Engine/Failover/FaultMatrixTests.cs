using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// Every fault a cloud can throw at us, on real sockets, in the real wire formats: which backend served, why,
/// and within what time. Timeouts are short (connect 0.5 s, first token 0.7 s, total 1.5 s).
/// </summary>
public sealed class FaultMatrixTests
{
    public static TheoryData<string, FakeApi, FaultKind, int, bool, string, double> FailoverRows => new()
    {
        // name, cloud api, fault, status, stream, expected reason, max seconds
        { "reset before headers", FakeApi.OpenAI, FaultKind.ResetBeforeHeaders, 0, false, "ConnectionReset", 1.0 },
        { "reset mid-body", FakeApi.OpenAI, FaultKind.ResetMidBody, 0, false, "ConnectionReset", 1.0 },
        { "blackhole (accept, never answer)", FakeApi.OpenAI, FaultKind.Blackhole, 0, false, "Timeout", 2.5 },
        { "blackhole while streaming", FakeApi.OpenAI, FaultKind.Blackhole, 0, true, "FirstTokenTimeout", 1.6 },
        { "slow first byte", FakeApi.OpenAI, FaultKind.SlowFirstByte, 0, false, "Timeout", 2.5 },
        { "slow first token", FakeApi.Anthropic, FaultKind.SlowFirstByte, 0, true, "FirstTokenTimeout", 1.6 },
        { "500", FakeApi.OpenAI, FaultKind.Status, 500, false, "ServerError", 1.0 },
        { "502", FakeApi.OpenAI, FaultKind.Status, 502, false, "ServerError", 1.0 },
        { "503", FakeApi.OpenAI, FaultKind.Status, 503, false, "ServerError", 1.0 },
        { "504", FakeApi.OpenAI, FaultKind.Status, 504, false, "ServerError", 1.0 },
        { "408", FakeApi.OpenAI, FaultKind.Status, 408, false, "RequestTimeout", 1.0 },
        { "409", FakeApi.OpenAI, FaultKind.Status, 409, false, "Conflict", 1.0 },
        { "425", FakeApi.OpenAI, FaultKind.Status, 425, false, "TooEarly", 1.0 },
        { "429 rate limit", FakeApi.OpenAI, FaultKind.Status, 429, false, "RateLimited", 1.0 },
        { "529 overloaded", FakeApi.Anthropic, FaultKind.Status, 529, false, "Overloaded", 1.0 },
        { "401", FakeApi.OpenAI, FaultKind.Status, 401, false, "AuthenticationFailed", 1.0 },
        { "403", FakeApi.Anthropic, FaultKind.Status, 403, false, "PermissionDenied", 1.0 },
        { "malformed JSON", FakeApi.OpenAI, FaultKind.MalformedJson, 0, false, "MalformedResponse", 1.0 },
        { "malformed stream chunk", FakeApi.OpenAI, FaultKind.MalformedJson, 0, true, "MalformedResponse", 1.0 },
        { "empty answer", FakeApi.OpenAI, FaultKind.EmptyAnswer, 0, false, "EmptyResponse", 1.0 },
        { "empty stream", FakeApi.Anthropic, FaultKind.EmptyAnswer, 0, true, "EmptyResponse", 1.0 },
        { "in-band error before text (OpenAI SSE)", FakeApi.OpenAI, FaultKind.InBandStreamError, 0, true, "StreamError", 1.0 },
        { "in-band error event (Anthropic SSE)", FakeApi.Anthropic, FaultKind.InBandStreamError, 0, true, "StreamError", 1.0 },
        { "anthropic error object in a 200", FakeApi.Anthropic, FaultKind.Status, 200, false, "StreamError", 1.0 },
    };

    [Theory]
    [MemberData(nameof(FailoverRows))]
    public async Task Cloud_fault_fails_over_to_Ollama(string name, FakeApi api, FaultKind fault, int status, bool stream, string reason, double maxSeconds)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = new FaultSpec(fault) { Status = status, Delay = TimeSpan.FromSeconds(3), Body = status == 200 ? "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}" : null };
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var sw = Stopwatch.StartNew();
        var response = await engine.SendAsync(Harness.Request(name, stream), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)), observer);
        sw.Stop();

        Assert.Equal("Ollama", response.Backend);
        Assert.Equal(reason, response.FailoverReason);
        Assert.Equal("ollama: reply to " + name, response.Text);
        // A one-off 5xx or reset is tried once more on the cloud (retry before failover); this fault stays.
        var tries = reason is "ServerError" or "ConnectionReset" ? 2 : 1;
        Assert.Equal(tries + 1, response.Attempts.Count);
        Assert.All(response.Attempts.Take(tries), a => Assert.Equal(reason, a.FailureClass));
        Assert.Equal(tries, cloud.Hits);
        Assert.Equal(1, ollama.Hits);
        Assert.Contains(observer.Verbose, v => v.StartsWith(FailoverEngine.FailoverLine, StringComparison.Ordinal));
        Assert.True(sw.Elapsed.TotalSeconds < maxSeconds, $"{name}: took {sw.Elapsed.TotalSeconds:0.00} s, bound {maxSeconds} s");
        if (fault is FaultKind.Blackhole or FaultKind.SlowFirstByte)
        {
            var floor = reason == "FirstTokenTimeout" ? 0.65 : 1.45;
            Assert.True(sw.Elapsed.TotalSeconds >= floor, $"{name}: gave up after {sw.Elapsed.TotalSeconds:0.00} s, before its timeout");
        }

        if (stream)
        {
            Assert.Equal(response.Text, string.Concat(observer.Tokens));
        }
    }

    [Fact]
    public async Task Refused_connection_fails_over_at_once()
    {
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var sw = Stopwatch.StartNew();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(FakeAiServer.RefusedUri()), Harness.TempLog(), Harness.Ollama(ollama)));
        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ConnectionRefused", r.FailoverReason);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task A_TLS_handshake_failure_fails_over_at_once()
    {
        // An https:// cloud URL whose server answers in plain HTTP: the handshake fails.
        using var plain = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        plain.Start();
        var serving = Task.Run(async () =>
        {
            using var c = await plain.AcceptTcpClientAsync();
            await c.GetStream().WriteAsync("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"u8.ToArray());
            await Task.Delay(200);
        });
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var port = ((System.Net.IPEndPoint)plain.LocalEndpoint).Port;
        var sw = Stopwatch.StartNew();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(new Uri($"https://127.0.0.1:{port}/v1/chat/completions")), Harness.TempLog(), Harness.Ollama(ollama)));
        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("Tls", r.FailoverReason);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1), $"took {sw.Elapsed}");
        await serving;
    }

    [SkippableFact]
    public async Task Syn_blackhole_fails_over_after_the_connect_timeout()
    {
        using var hole = new SynBlackhole();
        Skip.IfNot(hole.IsBlackholed, "this kernel answered every SYN; no loopback blackhole possible here");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var sw = Stopwatch.StartNew();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(hole.Uri(), t: Harness.Fast with { Connect = TimeSpan.FromMilliseconds(500) }), Harness.TempLog(), Harness.Ollama(ollama)));
        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ConnectTimeout", r.FailoverReason);
        Assert.InRange(sw.Elapsed.TotalSeconds, 0.45, 1.4);
    }

    [Fact]
    public async Task Quota_exhausted_429_is_its_own_reason_and_warns()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(429, "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}");
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)), observer);
        Assert.Equal("QuotaExhausted", r.FailoverReason);
        Assert.Equal(429, r.Attempts[0].StatusCode);
        Assert.NotEmpty(observer.Warnings);
    }

    [Theory]
    [InlineData(401)]
    [InlineData(403)]
    public async Task Auth_failures_fail_over_and_warn_loudly(int status)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(status);
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)), observer);
        Assert.Equal("Ollama", r.Backend);
        var warning = Assert.Single(observer.Warnings);
        Assert.Contains("configuration problem, not an outage", warning);
    }

    [Theory]
    [InlineData(400, "BadRequest")]
    [InlineData(404, "NotFound")]
    [InlineData(413, "PayloadTooLarge")]
    [InlineData(422, "UnprocessableEntity")]
    public async Task Request_errors_do_not_fail_over(int status, string cls)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(status);
        using var engine = new FailoverEngine();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama))));
        Assert.Equal(AiRequestFailure.RequestRejected, e.Failure);
        Assert.Equal(cls, e.Attempts.Single().FailureClass.ToString());
        Assert.Contains("not sent to Ollama", e.Message);
        Assert.Equal(0, ollama.Hits);
    }

    [Theory]
    [InlineData(FakeApi.OpenAI, false)]
    [InlineData(FakeApi.OpenAI, true)]
    [InlineData(FakeApi.Anthropic, false)]
    [InlineData(FakeApi.Anthropic, true)]
    public async Task Content_policy_refusals_are_never_routed_around(FakeApi api, bool stream)
    {
        await using var cloud = FakeAiServer.Start(api);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = new FaultSpec(FaultKind.Refusal);
        using var engine = new FailoverEngine();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(stream: stream), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama))));
        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        Assert.Equal(0, ollama.Hits);
    }

    [Fact]
    public async Task Content_policy_error_code_on_400_is_a_refusal()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(400, "{\"error\":{\"message\":\"Your request was rejected by our safety system\",\"type\":\"invalid_request_error\",\"code\":\"content_policy_violation\"}}");
        using var engine = new FailoverEngine();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama))));
        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        Assert.Equal(0, ollama.Hits);
    }

    [Theory]
    [InlineData(FaultKind.StallMidStream, "StallTimeout")]
    [InlineData(FaultKind.StreamWithoutTerminator, "StreamTruncated")]
    public async Task With_rescue_off_a_stream_that_breaks_after_text_is_an_error_not_a_silent_success(FaultKind fault, string cls)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Answer = _ => "a long answer that arrives in several pieces";
        cloud.Fault = new FaultSpec(fault);
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();
        var sw = Stopwatch.StartNew();
        var request = new AiRequest { Messages = [new ChatMessage("user", "hello")], Stream = true, StreamRescue = StreamRescueMode.None };
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(request, Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)), observer));
        Assert.Equal(AiRequestFailure.StreamInterrupted, e.Failure);
        Assert.Equal(cls, e.Attempts[^1].FailureClass.ToString());
        Assert.False(string.IsNullOrEmpty(e.PartialText));
        Assert.StartsWith(e.PartialText!, "a long answer that arrives in several pieces");
        Assert.Equal(0, ollama.Hits);
        Assert.True(sw.Elapsed.TotalSeconds < 2.5, $"took {sw.Elapsed}");
    }

    [Theory]
    [InlineData(FakeApi.OpenAI)]
    [InlineData(FakeApi.Anthropic)]
    public async Task Healthy_cloud_serves_in_its_own_wire_format(FakeApi api)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        foreach (var stream in new[] { false, true })
        {
            var r = await engine.SendAsync(Harness.Request("ping", stream), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)));
            Assert.Equal("Cloud", r.Backend);
            Assert.Equal("cloud: reply to ping", r.Text);
            Assert.Equal("", r.FailoverReason);
            Assert.Equal("fake-model", r.Model);
        }

        Assert.Equal(0, ollama.Hits);
        var sent = cloud.Requests.First();
        if (api == FakeApi.Anthropic)
        {
            Assert.Equal(Harness.CanaryKey, sent.Headers["x-api-key"]);
            Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
            Assert.Equal(1024, sent.Json!["max_tokens"]!.GetValue<int>());
        }
        else
        {
            Assert.Equal("Bearer " + Harness.CanaryKey, sent.Headers["Authorization"]);
        }
    }

    [Fact]
    public async Task Ollama_endpoints_fail_over_in_priority_order()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var sick = FakeAiServer.Start(FakeApi.Ollama, "ollama-a");
        await using var healthy = FakeAiServer.Start(FakeApi.Ollama, "ollama-b");
        cloud.Fault = FaultSpec.Http(503);
        sick.Fault = new FaultSpec(FaultKind.InBandStreamError);
        using var engine = new FailoverEngine();
        var r = await engine.SendAsync(Harness.Request(stream: true),
            Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), BackendEndpoint.Ollama(FakeAiServer.RefusedUri("/").ToString(), "m", Harness.Fast), Harness.Ollama(sick), Harness.Ollama(healthy)));
        Assert.Equal("ollama-b: reply to hello", r.Text);
        Assert.Equal(new[] { "ServerError", "ServerError", "ConnectionRefused", "StreamError", "" }, r.Attempts.Select(a => a.FailureClass.ToString()));
        Assert.Equal(healthy.BaseUri + "api/chat", r.Endpoint);
        Assert.False(sick.Requests.Single().Json!["stream"]!.GetValue<bool>() == false);
    }

    [Fact]
    public async Task Every_backend_failing_names_each_failure()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(502);
        ollama.Fault = FaultSpec.Http(503);
        using var engine = new FailoverEngine();
        var events = new List<ContinuityEvent>();
        engine.StateChanged += events.Add;
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama))));
        Assert.Equal(AiRequestFailure.AllBackendsFailed, e.Failure);
        Assert.Contains("Cloud " + Harness.Cloud(cloud).Display + ": ServerError", e.Message);
        Assert.Contains("Ollama " + Harness.Ollama(ollama).Display + ": ServerError", e.Message);
        Assert.Contains(events, ev => ev.Kind == ContinuityEventKind.AllBackendsFailed);
    }

    [Fact]
    public async Task Ollama_non_streaming_requests_say_stream_false()
    {
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine();
        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(null, Harness.TempLog(), Harness.Ollama(ollama)));
        Assert.Equal("Ollama", r.Backend);
        Assert.False(ollama.Requests.Single().Json!["stream"]!.GetValue<bool>());
    }
}
