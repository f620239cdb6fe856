using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Failover;
using OllamaContinuity.Failover.Circuit;

namespace OllamaContinuity.Tests.Failover.Circuit;

/// <summary>The circuit's state machine alone: open rules, probe schedule, one probe in flight. Time is fake.</summary>
public sealed class CircuitStateControllerTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero));

    private CircuitStateController Create(CircuitOptions? o = null) => new(_clock, o ?? new CircuitOptions());

    private static bool Admit(CircuitStateController c) => c.TryAdmit(out _, out _);

    [Fact]
    public void Three_failures_in_a_row_open_it_whatever_succeeded_before()
    {
        var c = Create();
        for (var i = 0; i < 15; i++)
        {
            Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Success));
        }

        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Failure, "ServerError"));
        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Failure, "ServerError"));
        Assert.True(Admit(c));
        Assert.Equal(CircuitTransition.Opened, c.Record(CircuitOutcome.Failure, "ServerError"));
        Assert.False(Admit(c));
        Assert.Equal("ServerError: 3 failures in a row", c.Snapshot("e").Reason);
    }

    [Fact]
    public void Two_silent_failures_in_a_row_open_it()
    {
        var c = Create();
        for (var i = 0; i < 15; i++)
        {
            c.Record(CircuitOutcome.Success);
        }

        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.SilentFailure, "Timeout"));
        Assert.Equal(CircuitTransition.Opened, c.Record(CircuitOutcome.SilentFailure, "Timeout"));
        Assert.StartsWith("Timeout: 2 silent failures in a row", c.Snapshot("e").Reason);
    }

    [Fact]
    public void A_success_between_failures_resets_the_run()
    {
        var c = Create(new CircuitOptions { MinimumThroughput = 100 });
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.SilentFailure, "Timeout"));
            Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Success));
            Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Failure, "ServerError"));
            Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Success));
        }

        Assert.Equal("Closed", c.Snapshot("e").State);
    }

    [Fact]
    public void The_ratio_rule_still_opens_on_alternating_failures_and_forgets_them_after_the_sampling_duration()
    {
        var c = Create(new CircuitOptions { MinimumThroughput = 6, FailureRatio = 0.5, SamplingDuration = TimeSpan.FromSeconds(30) });
        c.Record(CircuitOutcome.Failure, "ServerError");
        c.Record(CircuitOutcome.Success);
        _clock.Advance(TimeSpan.FromSeconds(40)); // the first two are out of the window
        c.Record(CircuitOutcome.Failure, "ServerError");
        c.Record(CircuitOutcome.Success);
        c.Record(CircuitOutcome.Failure, "ServerError");
        c.Record(CircuitOutcome.Success);
        c.Record(CircuitOutcome.Failure, "ServerError");
        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Success)); // 3 of 6 in the window: not yet judged... until the next failure
        Assert.Equal(CircuitTransition.Opened, c.Record(CircuitOutcome.Failure, "ServerError"));
        Assert.Contains("4 of 7 requests failed within 30 s", c.Snapshot("e").Reason);
    }

    [Fact]
    public void While_open_a_probe_is_due_each_interval_and_only_one_is_in_flight()
    {
        var c = Create();
        OpenIt(c);
        var opened = _clock.GetUtcNow();
        Assert.Equal(opened.AddSeconds(2), c.Snapshot("e").NextProbe);
        Assert.False(c.TryBeginProbe());
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.True(c.TryBeginProbe());
        Assert.False(c.TryBeginProbe()); // one in flight
        _clock.Advance(TimeSpan.FromSeconds(10));
        Assert.False(c.TryBeginProbe()); // still one in flight, however long it takes
        Assert.True(c.Snapshot("e").ProbeInFlight);

        Assert.Equal(CircuitTransition.None, c.EndProbe(false, "ConnectionRefused: connection refused", null));
        Assert.False(c.Snapshot("e").ProbeInFlight);
        Assert.Equal("ConnectionRefused: connection refused", c.Snapshot("e").LastProbeResult);
        Assert.True(c.TryBeginProbe()); // the last one started 10 s ago: due at once
        _clock.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Equal(CircuitTransition.None, c.EndProbe(false, "ServerError: HTTP 500", null));
        Assert.Equal(opened.AddSeconds(14), c.Snapshot("e").NextProbe); // one interval after it started
        _clock.Advance(TimeSpan.FromSeconds(1.8));
        Assert.False(c.TryBeginProbe());
        _clock.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(c.TryBeginProbe());
        Assert.Equal(3, c.Snapshot("e").Probes);
        Assert.False(Admit(c));

        Assert.Equal(CircuitTransition.Closed, c.EndProbe(true, "Success", null));
        Assert.True(Admit(c));
        var closed = c.Snapshot("e");
        Assert.Equal("Closed", closed.State);
        Assert.Equal("Success", closed.LastProbeResult);
        // The run starts again from zero: two more failures do not reopen it.
        c.Record(CircuitOutcome.Failure, "ServerError");
        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Failure, "ServerError"));
    }

    [Fact]
    public void A_retry_after_pushes_the_next_probe_back()
    {
        var c = Create();
        c.Record(CircuitOutcome.Failure, "Overloaded");
        c.Record(CircuitOutcome.Failure, "Overloaded");
        Assert.Equal(CircuitTransition.Opened, c.Record(CircuitOutcome.Failure, "Overloaded", TimeSpan.FromSeconds(120)));
        Assert.Equal(_clock.GetUtcNow().AddSeconds(120), c.Snapshot("e").NextProbe);

        _clock.Advance(TimeSpan.FromSeconds(120));
        Assert.True(c.TryBeginProbe());
        c.EndProbe(false, "RateLimited: HTTP 429", TimeSpan.FromSeconds(30));
        Assert.Equal(_clock.GetUtcNow().AddSeconds(30), c.Snapshot("e").NextProbe);
    }

    [Fact]
    public void A_shorter_probe_interval_applies_to_the_probe_already_scheduled()
    {
        var c = Create(new CircuitOptions { ProbeInterval = TimeSpan.FromSeconds(30) });
        OpenIt(c);
        Assert.Equal(_clock.GetUtcNow().AddSeconds(30), c.Snapshot("e").NextProbe);
        c.ProbeInterval = TimeSpan.FromSeconds(2);
        Assert.Equal(_clock.GetUtcNow().AddSeconds(2), c.Snapshot("e").NextProbe);
        Assert.Throws<ArgumentOutOfRangeException>(() => c.ProbeInterval = TimeSpan.Zero);
    }

    [Fact]
    public void The_probe_loop_stops_when_the_circuit_closes_or_nobody_wants_the_cloud()
    {
        var c = Create(new CircuitOptions { ProbeIdleTimeout = TimeSpan.FromMinutes(5) });
        Assert.False(c.TryStartLoop()); // closed: nothing to probe
        OpenIt(c);
        Assert.True(c.TryStartLoop());
        Assert.False(c.TryStartLoop()); // one loop per circuit
        Assert.Equal(TimeSpan.FromSeconds(2), c.NextProbeDelayOrStop());
        _clock.Advance(TimeSpan.FromMinutes(6));
        Assert.Null(c.NextProbeDelayOrStop()); // idle: the loop ends
        Assert.False(Admit(c)); // a request wants the cloud: still served elsewhere, and the loop may start again
        Assert.True(c.TryStartLoop());
        Assert.Equal(TimeSpan.Zero, c.NextProbeDelayOrStop());
    }

    [Fact]
    public void A_late_success_of_a_request_sent_before_it_opened_closes_it_and_late_failures_change_nothing()
    {
        var c = Create();
        OpenIt(c);
        Assert.Equal(CircuitTransition.None, c.Record(CircuitOutcome.Failure, "ServerError"));
        Assert.Equal("Open", c.Snapshot("e").State);
        Assert.Equal(CircuitTransition.Closed, c.Record(CircuitOutcome.Success));
        Assert.True(Admit(c));
    }

    [Fact]
    public void A_cool_down_skips_the_cloud_while_closed()
    {
        var c = Create();
        c.CoolDown(_clock.GetUtcNow().AddSeconds(20));
        Assert.False(c.TryAdmit(out var next, out var until));
        Assert.Null(next);
        Assert.Equal(_clock.GetUtcNow().AddSeconds(20), until);
        Assert.Equal("CoolingDown", c.Snapshot("e").State);
        _clock.Advance(TimeSpan.FromSeconds(20));
        Assert.True(Admit(c));
    }

    [Theory]
    [InlineData(nameof(CircuitOptions.ConsecutiveFailures), 0)]
    [InlineData(nameof(CircuitOptions.SilentFailures), 0)]
    [InlineData(nameof(CircuitOptions.ProbeInterval), 0.05)]
    public void Options_are_validated(string name, double value)
    {
        var o = name switch
        {
            nameof(CircuitOptions.ConsecutiveFailures) => new CircuitOptions { ConsecutiveFailures = (int)value },
            nameof(CircuitOptions.SilentFailures) => new CircuitOptions { SilentFailures = (int)value },
            _ => new CircuitOptions { ProbeInterval = TimeSpan.FromSeconds(value) },
        };
        Assert.Equal(name, Assert.Throws<ArgumentOutOfRangeException>(() => new FailoverEngine(new FailoverEngineOptions { Circuit = o })).ParamName);
    }

    private static void OpenIt(CircuitStateController c)
    {
        c.Record(CircuitOutcome.Failure, "ServerError");
        c.Record(CircuitOutcome.Failure, "ServerError");
        Assert.Equal(CircuitTransition.Opened, c.Record(CircuitOutcome.Failure, "ServerError"));
    }
}
