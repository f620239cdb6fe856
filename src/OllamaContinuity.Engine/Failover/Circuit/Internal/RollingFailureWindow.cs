namespace OllamaContinuity.Failover.Circuit;

/// <summary>
/// Requests and failures over the last sampling duration, in ten buckets (as Polly's rolling health metrics do):
/// constant memory whatever the request rate. Not thread-safe; its owner holds the lock.
/// </summary>
internal sealed class RollingFailureWindow
{
    private const int BucketCount = 10;
    private readonly long _bucketTicks;
    private readonly long[] _slot = new long[BucketCount];
    private readonly int[] _total = new int[BucketCount];
    private readonly int[] _failed = new int[BucketCount];

    public RollingFailureWindow(TimeSpan samplingDuration)
    {
        _bucketTicks = Math.Max(1, samplingDuration.Ticks / BucketCount);
        Reset();
    }

    public void Record(DateTimeOffset now, bool failed)
    {
        var slot = now.UtcTicks / _bucketTicks;
        var i = (int)(slot % BucketCount);
        if (_slot[i] != slot)
        {
            _slot[i] = slot;
            _total[i] = 0;
            _failed[i] = 0;
        }

        _total[i]++;
        if (failed)
        {
            _failed[i]++;
        }
    }

    public (int Total, int Failed) Sum(DateTimeOffset now)
    {
        var slot = now.UtcTicks / _bucketTicks;
        int total = 0, failed = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            if (slot - _slot[i] is >= 0 and < BucketCount)
            {
                total += _total[i];
                failed += _failed[i];
            }
        }

        return (total, failed);
    }

    public void Reset()
    {
        Array.Fill(_slot, long.MinValue / 2);
        Array.Clear(_total);
        Array.Clear(_failed);
    }
}
