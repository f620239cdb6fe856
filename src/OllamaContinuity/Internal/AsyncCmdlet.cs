using System.Collections.Concurrent;
using System.Management.Automation;

namespace OllamaContinuity.Internal;

/// <summary>
/// Base for cmdlets that call the async engine. The work runs on the thread pool with a token that
/// StopProcessing (Ctrl+C) cancels; everything that must touch PowerShell (Write*, host UI, prompts) is queued
/// back to the pipeline thread, which pumps the queue until the work is done.
/// </summary>
public abstract class AsyncCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private Pump? _pump;

    /// <summary>Cancelled by StopProcessing (Ctrl+C); pass it all the way down to the socket.</summary>
    protected CancellationToken CancellationToken => _cts.Token;

    protected override void StopProcessing() => _cts.Cancel();

    /// <summary>Runs <paramref name="work"/> on the thread pool to completion while executing queued actions on this (the pipeline) thread.</summary>
    protected T RunAsync<T>(Func<CancellationToken, Task<T>> work) => RunAsync(work, startOnPipelineThread: false);

    /// <summary>
    /// Runs <paramref name="work"/> to completion while executing queued actions on this (the pipeline) thread.
    /// </summary>
    /// <param name="work">The work.</param>
    /// <param name="startOnPipelineThread">
    /// Start <paramref name="work"/> on this thread instead of the thread pool: it runs here until its first await
    /// that does not complete at once (the socket, for a request), and the rest runs on the thread pool as before.
    /// That saves the thread-pool hop before the work starts (30-70 µs per call on a loaded 2-core machine). Only for
    /// work that never blocks waiting for the pipeline thread (it may await <see cref="InvokeOnPipelineThreadAsync"/>
    /// and <see cref="Post"/>: called on this thread, both run the action at once).
    /// </param>
    protected T RunAsync<T>(Func<CancellationToken, Task<T>> work, bool startOnPipelineThread)
    {
        var pump = new Pump();
        _pump = pump;
        try
        {
            Task<T> task;
            if (startOnPipelineThread)
            {
                // No synchronization context of the host may capture the work's continuations: this thread is busy
                // pumping until the work ends, so a continuation posted back to it would never run.
                var context = SynchronizationContext.Current;
                SynchronizationContext.SetSynchronizationContext(null);
                try
                {
                    task = work(_cts.Token);
                }
                catch (Exception e)
                {
                    task = Task.FromException<T>(e);
                }
                finally
                {
                    SynchronizationContext.SetSynchronizationContext(context);
                }
            }
            else
            {
                task = Task.Run(() => work(_cts.Token));
            }

            task.ContinueWith(static (_, p) => ((Pump)p!).Complete(), pump, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            pump.Run();

            try
            {
                return task.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) when (_cts.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
        }
        finally
        {
            _pump = null;
        }
    }

    /// <summary>
    /// Queues an action for the pipeline thread (fire and forget). Ignored once the work has finished. Called on the
    /// pipeline thread itself (the start of work begun with startOnPipelineThread, or a queued action), it runs the
    /// action at once, after whatever was queued before it.
    /// </summary>
    internal void Post(Action action)
    {
        if (_pump is not { } pump)
        {
            return;
        }

        if (pump.IsOwnerThread)
        {
            pump.RunQueued();
            action();
            return;
        }

        pump.TryAdd(action);
    }

    /// <summary>Runs <paramref name="func"/> on the pipeline thread and returns its result to the worker.</summary>
    internal Task<TResult> InvokeOnPipelineThreadAsync<TResult>(Func<TResult> func)
    {
        var tcs = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var pump = _pump;
        void Run()
        {
            try
            {
                tcs.TrySetResult(func());
            }
            catch (Exception e)
            {
                tcs.TrySetException(e);
            }
        }

        if (pump is not null && pump.IsOwnerThread)
        {
            pump.RunQueued();
            Run();
        }
        else if (pump is null || !pump.TryAdd(Run))
        {
            tcs.TrySetException(new InvalidOperationException("Not running."));
        }

        return tcs.Task;
    }

    /// <summary>
    /// The pipeline thread's side of the bridge: a queue and one event that both a posted action and the work's
    /// completion set. (A BlockingCollection ended by CompleteAdding wakes its consumer through a cancellation, and
    /// its enumerator throws and catches an OperationCanceledException to end: about 100 µs per request.)
    /// </summary>
    private sealed class Pump
    {
        private readonly ConcurrentQueue<Action> _actions = new();
        private readonly int _owner = Environment.CurrentManagedThreadId;

        // Never disposed: it allocates no kernel handle unless its WaitHandle is read, and a worker may still Set it
        // after the pipeline thread has left (a Post racing the end of the work).
        private readonly ManualResetEventSlim _signal = new(false);
        private volatile bool _completed;

        /// <summary>True on the pipeline thread (the one that created the pump and runs its actions).</summary>
        public bool IsOwnerThread => Environment.CurrentManagedThreadId == _owner;

        /// <summary>Runs what is queued now (pipeline thread only).</summary>
        public void RunQueued()
        {
            while (_actions.TryDequeue(out var action))
            {
                action();
            }
        }

        public bool TryAdd(Action action)
        {
            if (_completed)
            {
                return false;
            }

            _actions.Enqueue(action);
            _signal.Set();
            return true;
        }

        public void Complete()
        {
            _completed = true;
            _signal.Set();
        }

        /// <summary>Runs the queued actions until the work has completed and the queue is empty.</summary>
        public void Run()
        {
            while (true)
            {
                _signal.Wait();
                _signal.Reset();
                var completed = _completed; // read before draining: whatever was queued before Complete() is run below
                RunQueued();

                if (completed)
                {
                    return;
                }
            }
        }
    }

    public void Dispose()
    {
        _cts.Dispose();
        GC.SuppressFinalize(this);
    }
}
