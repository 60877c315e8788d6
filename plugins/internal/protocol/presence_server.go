package protocol

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/plugins/internal/pb/presencev1"
)

// PresenceServer serves presencev1 from a presence.Store.
type PresenceServer struct {
	presencev1.UnimplementedPresenceServer
	Store presence.Store
}

// StoreError maps a store's error to a gRPC status the host maps back:
// ErrInvalidEntry is InvalidArgument, ErrClosed is FailedPrecondition.
func StoreError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, presence.ErrInvalidEntry):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, presence.ErrClosed):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// Put implements presencev1.PresenceServer.
func (s *PresenceServer) Put(ctx context.Context, req *presencev1.PutRequest) (*presencev1.PutResponse, error) {
	e, err := EntryFromPB(req.GetEntry())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.Store.Put(ctx, e); err != nil {
		return nil, StoreError(err)
	}
	return &presencev1.PutResponse{}, nil
}

// Delete implements presencev1.PresenceServer.
func (s *PresenceServer) Delete(ctx context.Context, req *presencev1.DeleteRequest) (*presencev1.DeleteResponse, error) {
	if err := s.Store.Delete(ctx, req.GetUser(), req.GetDevice()); err != nil {
		return nil, StoreError(err)
	}
	return &presencev1.DeleteResponse{}, nil
}

// Get implements presencev1.PresenceServer.
func (s *PresenceServer) Get(ctx context.Context, req *presencev1.GetRequest) (*presencev1.GetResponse, error) {
	e, ok, err := s.Store.Get(ctx, req.GetUser(), req.GetDevice())
	if err != nil {
		return nil, StoreError(err)
	}
	if !ok {
		return &presencev1.GetResponse{}, nil
	}
	return &presencev1.GetResponse{Found: true, Entry: EntryToPB(e)}, nil
}

// ListUser implements presencev1.PresenceServer.
func (s *PresenceServer) ListUser(ctx context.Context, req *presencev1.ListUserRequest) (*presencev1.ListUserResponse, error) {
	l, err := s.Store.ListUser(ctx, req.GetUser())
	if err != nil {
		return nil, StoreError(err)
	}
	out := &presencev1.ListUserResponse{Entries: make([]*presencev1.Entry, 0, len(l))}
	for _, e := range l {
		out.Entries = append(out.Entries, EntryToPB(e))
	}
	return out, nil
}

// Watch implements presencev1.PresenceServer: the first message (ready)
// is sent once the store's watch is in place, so the host's Watch returns
// only when later changes are sure to be seen. The stream ends, with
// codes.Unavailable, when the store closes the watcher.
func (s *PresenceServer) Watch(_ *presencev1.WatchRequest, stream presencev1.Presence_WatchServer) error {
	ctx := stream.Context()
	ch, err := s.Store.Watch(ctx)
	if err != nil {
		return StoreError(err)
	}
	if err := stream.Send(&presencev1.WatchEvent{Ready: true}); err != nil {
		return err
	}
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return status.Error(codes.Canceled, "watch cancelled")
				}
				return status.Error(codes.Unavailable, "presence backend closed the watch")
			}
			if err := stream.Send(&presencev1.WatchEvent{Entry: EntryToPB(e)}); err != nil {
				return err
			}
		case <-ctx.Done():
			return status.Error(codes.Canceled, "watch cancelled")
		}
	}
}
