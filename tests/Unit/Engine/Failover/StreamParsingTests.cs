using System.Text.Json.Nodes;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// Tolerant stream parsing, finish reasons, usage, refusals, thinking and per-provider error bodies, on real
/// sockets with the providers' real bytes where a recording exists.
/// </summary>
public sealed class StreamParsingTests
{
    private static BackendTimeouts T => StreamRescueTests.T;

    private static readonly BackendTimeouts Patient = new()
    {
        Connect = TimeSpan.FromSeconds(2),
        FirstToken = TimeSpan.FromMilliseconds(1000),
        Stall = TimeSpan.FromMilliseconds(1000),
        Total = TimeSpan.FromSeconds(20),
    };

    private static AiRequest Streamed(bool thinking = false) => new() { Messages = [new ChatMessage("user", "hello")], Stream = true, IncludeThinking = thinking };

    [Theory]
    [InlineData(FakeApi.OpenAI)]
    [InlineData(FakeApi.Anthropic)]
    [InlineData(FakeApi.Ollama)]
    public async Task One_malformed_event_among_60_is_skipped_and_counted(FakeApi api)
    {
        await using var server = FakeAiServer.Start(api, "srv");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        server.Answer = _ => StreamRescueTests.SixtyWords;
        server.Fault = new FaultSpec(FaultKind.MalformedAmong) { Words = 10 };
        using var engine = new FailoverEngine();
        var plan = api == FakeApi.Ollama
            ? Harness.Plan(null, Harness.TempLog(), Harness.Ollama(server, T))
            : Harness.Plan(Harness.Cloud(server, T), Harness.TempLog(), Harness.Ollama(ollama, T));

        var r = await engine.SendAsync(Streamed(), plan);

        Assert.Equal(StreamRescueTests.SixtyWords, r.Text);
        Assert.Equal(1, r.Attempts.Single().BadEvents);
        Assert.Equal(0, ollama.Hits);
    }

    [Fact]
    public async Task More_than_a_few_bad_events_is_a_failure_that_fails_over()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = new FaultSpec(FaultKind.Replay) { Status = 200, ContentType = "text/event-stream", Body = string.Concat(Enumerable.Repeat("data: {not json\n\n", 8)) + "data: [DONE]\n\n" };
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)));

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("MalformedResponse", r.FailoverReason);
        Assert.Contains("unparseable", r.Attempts[0].Detail);
        Assert.Equal(6, r.Attempts[0].BadEvents);
    }

    [Theory]
    [InlineData(FakeApi.OpenAI)]
    [InlineData(FakeApi.Anthropic)]
    public async Task A_stream_closed_cleanly_after_its_finish_reason_is_complete_and_never_opens_the_circuit(FakeApi api)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => StreamRescueTests.SixtyWords;
        cloud.Fault = new FaultSpec(FaultKind.FinishWithoutTerminator);
        using var engine = new FailoverEngine();

        for (var i = 0; i < 5; i++)
        {
            var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)));
            Assert.Equal("Cloud", r.Backend);
            Assert.Equal(StreamRescueTests.SixtyWords, r.Text);
            Assert.Equal("stop", r.FinishReason);
        }

        Assert.Equal(0, ollama.Hits);
        Assert.All(engine.GetCircuits(), c => Assert.Equal("Closed", c.State));
    }

    [SkippableFact]
    public async Task A_streamed_refusal_delta_is_a_content_policy_refusal_with_no_failover()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = WireFixture.Spec("oa_st_refusal.sse");
        using var engine = new FailoverEngine();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T))));

        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        Assert.Contains("I'm", e.Attempts[0].Detail);
        Assert.Equal(0, ollama.Hits);
    }

    [Fact]
    public async Task A_refusal_delta_from_the_fake_is_refused_too()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = new FaultSpec(FaultKind.RefusalDelta);
        using var engine = new FailoverEngine();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T))));

        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        Assert.Equal(0, ollama.Hits);
    }

    [Theory]
    [InlineData(FakeApi.OpenAI)]
    [InlineData(FakeApi.Anthropic)]
    [InlineData(FakeApi.Ollama)]
    public async Task Reasoning_longer_than_the_first_token_timeout_counts_as_life_and_never_enters_the_text(FakeApi api)
    {
        await using var server = FakeAiServer.Start(api, "srv");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        server.Fault = new FaultSpec(FaultKind.ReasoningFirst) { Delay = TimeSpan.FromMilliseconds(2500) };
        using var engine = new FailoverEngine();
        var plan = api == FakeApi.Ollama
            ? Harness.Plan(null, Harness.TempLog(), BackendEndpoint.Ollama(server.BaseUri.ToString(), "m", Patient))
            : Harness.Plan(Harness.Cloud(server, Patient), Harness.TempLog(), Harness.Ollama(ollama, T));

        var plain = await engine.SendAsync(Streamed(), plan);
        var kept = await engine.SendAsync(Streamed(thinking: true), plan);

        Assert.Equal("srv: reply to hello", plain.Text);
        Assert.Null(plain.Thinking);
        Assert.Equal("srv: reply to hello", kept.Text);
        Assert.StartsWith(" thinking thinking", kept.Thinking);
        Assert.Equal(0, ollama.Hits);
    }

    [SkippableTheory]
    [InlineData("compat_st_reasoning.sse", FakeApi.OpenAI)]
    [InlineData("an_st_thinking_docs.sse", FakeApi.Anthropic)]
    [InlineData("ol_st_thinking.ndjson", FakeApi.Ollama)]
    [InlineData("ol_ns_thinking.json", FakeApi.Ollama)]
    [InlineData("an_ns_thinking_docs.json", FakeApi.Anthropic)]
    public async Task Recorded_reasoning_keeps_thinking_apart(string fixture, FakeApi api)
    {
        await using var server = FakeAiServer.Start(api, "srv");
        server.Fault = WireFixture.Spec(fixture);
        using var engine = new FailoverEngine();
        var plan = api == FakeApi.Ollama ? Harness.Plan(null, Harness.TempLog(), Harness.Ollama(server, Harness.Relaxed)) : Harness.Plan(Harness.Cloud(server, Harness.Relaxed), Harness.TempLog());
        var stream = !fixture.EndsWith(".json", StringComparison.Ordinal);

        var r = await engine.SendAsync(stream ? Streamed(thinking: true) : new AiRequest { Messages = [new ChatMessage("user", "hello")], IncludeThinking = true }, plan);

        Assert.False(string.IsNullOrWhiteSpace(r.Thinking));
        Assert.False(string.IsNullOrWhiteSpace(r.Text));
        Assert.DoesNotContain(r.Thinking!.Trim()[..8], r.Text);
    }

    [SkippableTheory]
    [InlineData("oa_st_finish_length.sse", FakeApi.OpenAI, true)]
    [InlineData("oa_ns_finish_length.json", FakeApi.OpenAI, false)]
    public async Task A_length_finish_is_reported_logged_and_warned(string fixture, FakeApi api, bool stream)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        cloud.Fault = WireFixture.Spec(fixture);
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();
        var log = Harness.TempLog();

        var r = await engine.SendAsync(new AiRequest { Messages = [new ChatMessage("user", "hi")], Stream = stream }, Harness.Plan(Harness.Cloud(cloud, Harness.Relaxed), log), observer);

        Assert.Equal("length", r.FinishReason);
        Assert.Contains(observer.Warnings, w => w.Contains("truncated", StringComparison.Ordinal));
        Assert.Equal("length", JsonNode.Parse(File.ReadAllLines(log).Single())!["finishReason"]!.GetValue<string>());
    }

    [SkippableTheory]
    [InlineData("oa_st_basic.sse", FakeApi.OpenAI, true)]
    [InlineData("an_st_recorded.sse", FakeApi.Anthropic, true)]
    [InlineData("an_ns_basic.json", FakeApi.Anthropic, false)]
    [InlineData("ol_st_tokens.ndjson", FakeApi.Ollama, true)]
    [InlineData("ol_ns_openapi.json", FakeApi.Ollama, false)]
    public async Task Every_provider_reports_why_it_stopped_and_its_token_counts(string fixture, FakeApi api, bool stream)
    {
        await using var server = FakeAiServer.Start(api, "srv");
        server.Fault = WireFixture.Spec(fixture);
        using var engine = new FailoverEngine();
        var plan = api == FakeApi.Ollama ? Harness.Plan(null, Harness.TempLog(), Harness.Ollama(server, Harness.Relaxed)) : Harness.Plan(Harness.Cloud(server, Harness.Relaxed), Harness.TempLog());

        var r = await engine.SendAsync(new AiRequest { Messages = [new ChatMessage("user", "hi")], Stream = stream }, plan);

        Assert.False(string.IsNullOrEmpty(r.Text));
        Assert.False(string.IsNullOrEmpty(r.FinishReason));
        Assert.NotNull(r.OutputTokens);
        Assert.NotNull(r.InputTokens);
    }

    [SkippableFact]
    public async Task A_long_recorded_stream_cut_into_97_byte_pieces_is_read_whole()
    {
        var path = WireFixture.Path("oa_st_long_bytesplit.sse");
        var expected = string.Concat(File.ReadAllText(path).Split('\n')
            .Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonNode.Parse(l[6..])!["choices"]!.AsArray())
            .Where(c => c.Count > 0)
            .Select(c => c[0]!["delta"]?["content"]?.GetValue<string>() ?? ""));
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        cloud.Fault = FaultSpec.Fixture(path) with { Words = 97 };
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, Harness.Relaxed), Harness.TempLog()));

        Assert.True(expected.Length > 500, $"{expected.Length} characters");
        Assert.Equal(expected, r.Text);
        Assert.Equal(0, r.Attempts[0].BadEvents);
    }

    [Fact]
    public async Task Streamed_OpenAI_requests_ask_for_usage()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        using var engine = new FailoverEngine();

        await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog()));
        await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog()));

        var sent = cloud.Requests.ToArray();
        Assert.True(sent[0].Json!["stream_options"]!["include_usage"]!.GetValue<bool>());
        Assert.Null(sent[1].Json!["stream_options"]);
    }

    [SkippableTheory]
    [InlineData("an_400_credit_balance_too_low.json")]
    [InlineData("an_400_usage_limits.json")]
    public async Task Anthropic_account_limits_are_quota_exhaustion_that_fails_over_with_a_warning(string fixture)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.Anthropic, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = WireFixture.Spec(fixture, 400);
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("QuotaExhausted", r.FailoverReason);
        Assert.Single(observer.Warnings);
    }

    [SkippableFact]
    public async Task Any_other_Anthropic_400_is_still_the_request_s_fault()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.Anthropic, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = WireFixture.Spec("an_400_invalid_request.json", 400);
        using var engine = new FailoverEngine();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T))));

        Assert.Equal(AiRequestFailure.RequestRejected, e.Failure);
        Assert.Equal(0, ollama.Hits);
    }

    [SkippableFact]
    public async Task A_model_missing_on_the_first_Ollama_server_only_is_served_by_the_next()
    {
        await using var first = FakeAiServer.Start(FakeApi.Ollama, "ollama-a");
        await using var second = FakeAiServer.Start(FakeApi.Ollama, "ollama-b");
        first.Fault = WireFixture.Spec("ol_404_model_not_found.json", 404);
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(null, Harness.TempLog(), Harness.Ollama(first, T), Harness.Ollama(second, T)));

        Assert.Equal("ollama-b: reply to hello", r.Text);
        Assert.Equal(new[] { "NotFound", "" }, r.Attempts.Select(a => a.FailureClass));
    }

    [SkippableFact]
    public async Task A_model_on_no_Ollama_server_is_an_error_naming_each_server_and_the_pull()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var first = FakeAiServer.Start(FakeApi.Ollama, "ollama-a");
        await using var second = FakeAiServer.Start(FakeApi.Ollama, "ollama-b");
        cloud.Fault = FaultSpec.Http(503);
        first.Fault = second.Fault = WireFixture.Spec("ol_404_model_not_found.json", 404);
        using var engine = new FailoverEngine();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(first, T), Harness.Ollama(second, T))));

        Assert.Equal(AiRequestFailure.ModelNotFound, e.Failure);
        Assert.Contains("ollama pull llama3.1:8b", e.Message);
        Assert.Contains(Harness.Ollama(first, T).Display, e.Message);
        Assert.Contains(Harness.Ollama(second, T).Display, e.Message);
        // The cloud's 503 is retried once before the failover; then each Ollama server is asked once.
        Assert.Equal(new[] { "Cloud", "Cloud", "Ollama", "Ollama" }, e.Attempts.Select(a => a.Backend));
    }
}
