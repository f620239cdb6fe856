using System.Runtime.InteropServices;

namespace OllamaContinuity.Drill;

/// <summary>
/// Keeps a running drill from leaving its block behind when the process is told to end: SIGTERM (systemctl stop, a
/// scheduled task's time limit, kill), SIGHUP (a dropped SSH session, a closed terminal) and, on Windows, Ctrl+Break
/// (SIGQUIT) and closing the console. The handler cancels the drill, waits (bounded by <see cref="CleanupTimeout"/>)
/// until its finally block has removed the block, removes it directly if that did not happen in time, and then
/// lets the signal end the process as it would have.
/// </summary>
internal sealed class DrillSignalGuard : IDisposable
{
    /// <summary>How long the handler waits for the drill's own cleanup before removing the block itself. The default value is 10 seconds.</summary>
    internal static TimeSpan CleanupTimeout { get; set; } = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _cancel;
    private readonly Func<Task> _emergencyRemove;
    private readonly ManualResetEventSlim _cleanedUp = new(false);
    private readonly List<PosixSignalRegistration> _registrations = [];

    public DrillSignalGuard(CancellationTokenSource cancel, Func<Task> emergencyRemove)
    {
        _cancel = cancel;
        _emergencyRemove = emergencyRemove;
        PosixSignal[] signals = OperatingSystem.IsWindows() ? [PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT] : [PosixSignal.SIGTERM, PosixSignal.SIGHUP];
        foreach (var signal in signals)
        {
            try
            {
                _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
            }
            catch (PlatformNotSupportedException)
            {
                // A platform without this signal (browser, some mobile targets): nothing to guard against.
            }
        }
    }

    /// <summary>The signal that stopped the drill, if any.</summary>
    public PosixSignal? Received { get; private set; }

    /// <summary>Called by the drill once its block is removed (or was never applied).</summary>
    public void CleanedUp() => _cleanedUp.Set();

    private void OnSignal(PosixSignalContext context)
    {
        Received ??= context.Signal;
        try
        {
            _cancel.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return; // the drill has finished
        }

        if (!_cleanedUp.Wait(CleanupTimeout))
        {
            try
            {
                _emergencyRemove().GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                // Nothing more can be done here; the marker stays for Stop-FailoverDrill.
            }
        }

        // context.Cancel stays false: the signal now ends the process, as it would have without a drill.
    }

    public void Dispose()
    {
        foreach (var r in _registrations)
        {
            r.Dispose();
        }

        _cleanedUp.Dispose();
    }
}
